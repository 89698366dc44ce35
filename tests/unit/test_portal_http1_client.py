"""The portal's small HTTP/1.1 client: request serialisation and answer parsing."""

from __future__ import annotations

import pytest
from twisted.internet import defer
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from synapse_base_cs_url.portal.http1_client import (
    MAX_BODY,
    MAX_HEAD,
    ClientProtocol,
    Origin,
    UpstreamClosed,
    UpstreamProtocolError,
    UpstreamResponse,
    serialize_request,
)


def connected() -> tuple[ClientProtocol, StringTransport]:
    protocol = ClientProtocol()
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def outcome(d: defer.Deferred[UpstreamResponse]) -> UpstreamResponse | Failure | None:
    """The result so far (``None`` while pending), without consuming it."""
    if not d.called:
        return None
    result: UpstreamResponse | Failure = d.result
    if isinstance(result, Failure):
        d.addErrback(lambda _: None)  # seen: not an unhandled error
    return result


def test_origin_and_serialisation() -> None:
    origin = Origin.from_url("http://10.1.0.2:8008/prefix")
    assert (origin.scheme, origin.host, origin.port, origin.prefix) == (
        "http",
        "10.1.0.2",
        8008,
        b"/prefix",
    )
    data = serialize_request(
        origin,
        b"POST",
        b"/_matrix/client/v3/login?x=1",
        [(b"Content-Type", [b"application/json"]), (b"X-Evil", [b"a\r\nInjected: 1"])],
        b"{}",
    )
    assert data == (
        b"POST /prefix/_matrix/client/v3/login?x=1 HTTP/1.1\r\nHost: 10.1.0.2:8008\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert Origin.from_url("https://hs.example.com").host_header == b"hs.example.com"
    assert Origin.from_url("http://[::1]:8008").host_header == b"[::1]:8008"


def test_content_length_answer_in_pieces_and_reuse() -> None:
    protocol, transport = connected()
    d = protocol.request(b"GET / HTTP/1.1\r\n\r\n")
    assert transport.value() == b"GET / HTTP/1.1\r\n\r\n"
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Le")
    protocol.dataReceived(b'ngth: 11\r\n\r\n{"a": ')
    assert outcome(d) is None
    protocol.dataReceived(b"true}")
    response = outcome(d)
    assert isinstance(response, UpstreamResponse)
    assert (response.status, response.body) == (200, b'{"a": true}')
    assert response.headers.getRawHeaders(b"content-type") == [b"application/json"]
    assert protocol.reusable
    second = protocol.request(b"GET /2 HTTP/1.1\r\n\r\n")
    protocol.dataReceived(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert outcome(second).status == 404  # type: ignore[union-attr]


def test_chunked_with_trailers_and_interim_100() -> None:
    protocol, _ = connected()
    d = protocol.request(b"x")
    protocol.dataReceived(b"HTTP/1.1 100 Continue\r\n\r\n")
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel")
    protocol.dataReceived(b"lo\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n")
    assert outcome(d) is None
    protocol.dataReceived(b"\r\n")
    assert outcome(d).body == b"hello world"  # type: ignore[union-attr]
    assert protocol.reusable


def test_duplicate_equal_content_lengths_are_one() -> None:
    protocol, _ = connected()
    d = protocol.request(b"x")
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok")
    assert outcome(d).body == b"ok"  # type: ignore[union-attr]


def test_more_than_content_length_makes_the_connection_unusable() -> None:
    protocol, _ = connected()
    d = protocol.request(b"x")
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK")
    assert outcome(d).body == b"ok"  # type: ignore[union-attr]
    assert not protocol.reusable


def test_body_until_close_and_connection_close() -> None:
    protocol, _ = connected()
    d = protocol.request(b"x")
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial ")
    protocol.dataReceived(b"body")
    assert outcome(d) is None
    assert not protocol.reusable
    protocol.connectionLost(Failure(Exception("closed")))
    assert outcome(d).body == b"partial body"  # type: ignore[union-attr]


def test_head_and_204_have_no_body() -> None:
    protocol, _ = connected()
    d = protocol.request(b"x", head=True)
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
    assert outcome(d).body == b""  # type: ignore[union-attr]
    d = protocol.request(b"x")
    protocol.dataReceived(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert outcome(d).status == 204  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "answer",
    [
        b"SMTP 220 hello\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 " + b"2" * 5000 + b" OK\r\n\r\n",  # int() refuses > 4300 digits
        b"HTTP/1.1 200 OK\r\nBad Name: 1\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\xff: 1\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        # Chunk sizes int(x, 16) would take, and chunk data without its CRLF:
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
        # A chunk over the body limit is refused before its data arrives:
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY + 1),
        # A chunk-size line that never ends:
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * (MAX_HEAD + 1),
    ],
)
def test_invalid_answers(answer: bytes) -> None:
    protocol, transport = connected()
    d = protocol.request(b"x")
    protocol.dataReceived(answer)
    result = outcome(d)
    assert isinstance(result, Failure)
    assert result.check(UpstreamProtocolError)
    # Aborted at once, so it is never reused. (This also accepted "not protocol.reusable",
    # which holds before any answer is parsed: the assertion could not fail.)
    assert transport.disconnected


@pytest.mark.parametrize(
    "answer",
    [
        b'{"access_token": "syt_secret"}\r\n\r\n',  # a body where a status line should be
        b"HTTP/1.1 200 OK\r\nsyt_secret\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nsyt secret: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: syt_secret\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nsyt_secret\r\n",
    ],
)
def test_invalid_answers_are_not_quoted(answer: bytes) -> None:
    """The error reaches the log and the client's 502: it must not carry answer bytes."""
    protocol, _ = connected()
    d = protocol.request(b"x")
    protocol.dataReceived(answer)
    result = outcome(d)
    assert isinstance(result, Failure)
    assert result.check(UpstreamProtocolError)
    assert "secret" not in str(result.value)


def test_closed_before_or_during_the_answer() -> None:
    protocol, _ = connected()
    d = protocol.request(b"x")
    protocol.connectionLost(Failure(Exception("reset")))
    result = outcome(d)
    assert isinstance(result, Failure)
    assert result.check(UpstreamClosed)
    assert not result.value.got_bytes
    protocol, _ = connected()
    d = protocol.request(b"x")
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    protocol.connectionLost(Failure(Exception("reset")))
    result = outcome(d)
    assert isinstance(result, Failure)
    assert result.value.got_bytes


def test_cancel_aborts_the_connection() -> None:
    protocol, transport = connected()
    d = protocol.request(b"x")
    d.cancel()
    result = outcome(d)
    assert isinstance(result, Failure)
    assert result.check(defer.CancelledError)
    assert transport.disconnecting or transport.disconnected


def test_unsolicited_data_closes_an_idle_connection() -> None:
    protocol, transport = connected()
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.disconnecting
