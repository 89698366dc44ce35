"""Request heads the portal cannot read (a request line or headers over Twisted's limits,
malformed lines) get an HTTP answer with a Matrix JSON body before the connection closes,
as nginx answers them, rather than a silent close the client cannot tell from a crash.

A real channel of the portal's own site over an in-memory transport."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.process import PortalProcess
from synapse_base_cs_url.portal.web.site import (
    LINGER_SECONDS,
    MAX_HEAD_SIZE,
    MAX_HEADERS,
    MAX_LINE,
)

CALLBACK = b"/_synapse_base_cs_url/sso/return"


class HalfClosingTransport(StringTransport):
    """A StringTransport that, like a TCP one, can close its writing half only."""

    write_closed = False
    aborted = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


def channel(transport: StringTransport | None = None) -> tuple[Any, StringTransport, Any]:
    config = PortalConfig.from_config(
        {
            "public_baseurl": "https://portal.example",
            "homeservers": {"hs1": {"base_url": "https://hs1.example"}},
            "default_homeserver": "hs1",
        }
    )
    reactor = MemoryReactorClock()
    process = PortalProcess(config, reactor)
    chan: Any = process.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = transport if transport is not None else StringTransport()
    chan.makeConnection(transport)
    return chan, transport, process


def answer(transport: StringTransport) -> tuple[int, dict[bytes, bytes], Any]:
    head, _, body = transport.value().partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines)
    assert int(headers[b"content-length"]) == len(body)
    return int(status_line.split(b" ")[1]), headers, json.loads(body)


def metric(process: Any, status: int) -> float:
    value = process.metrics.registry.get_sample_value(
        "synapse_base_cs_url_portal_unreadable_requests_total", {"status": str(status)}
    )
    return float(value or 0)


def long_target(length: int) -> bytes:
    return CALLBACK + b"?to=" + b"x" * (length - len(CALLBACK) - 4)


@pytest.mark.parametrize("split", [False, True])
def test_a_request_line_over_the_limit_is_answered_414(split: bool) -> None:
    """The reviewed case: a well-formed SSO callback of 17 kB, which Twisted closed without
    a word. ``split``: the line arrives in pieces, none with a line end before the limit."""
    chan, transport, process = channel()
    data = b"GET " + long_target(17_000) + b" HTTP/1.1\r\nHost: portal\r\n\r\n"
    if split:
        for i in range(0, len(data), 1000):
            chan.dataReceived(data[i : i + 1000])
    else:
        chan.dataReceived(data)
    status, headers, body = answer(transport)
    assert status == 414
    assert headers[b"connection"] == b"close"
    assert headers[b"content-type"] == b"application/json"
    assert body["errcode"] == "M_TOO_LARGE"
    assert str(MAX_LINE) in body["error"]
    assert transport.disconnecting
    assert metric(process, 414) == 1


def test_a_request_line_at_the_limit_is_served() -> None:
    chan, transport, _ = channel()
    line = b"GET " + long_target(MAX_LINE - len(b"GET  HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == MAX_LINE
    chan.dataReceived(line + b"\r\n\r\n")  # (a header more and the head is over the limit)
    written = transport.value()
    assert written.startswith(b"HTTP/1.1 400")  # the callback's own answer: no hs, no sig
    assert b"M_MISSING_PARAM" in written
    assert not transport.disconnecting


def test_a_header_line_over_the_limit_is_answered_431() -> None:
    chan, transport, process = channel()
    chan.dataReceived(b"GET /_matrix/client/versions HTTP/1.1\r\nCookie: " + b"c" * 17_000)
    status, headers, body = answer(transport)
    assert (status, body["errcode"], headers[b"connection"]) == (431, "M_TOO_LARGE", b"close")
    assert metric(process, 431) == 1


def test_headers_over_the_total_size_are_answered_431() -> None:
    chan, transport, _ = channel()
    header = b"X-Filler: " + b"f" * 4000 + b"\r\n"
    chan.dataReceived(b"GET /_matrix/client/versions HTTP/1.1\r\n" + header * 5 + b"\r\n")
    assert len(header) * 5 > MAX_HEAD_SIZE
    status, _, body = answer(transport)
    assert (status, body["errcode"]) == (431, "M_TOO_LARGE")


def test_too_many_headers_are_answered_431() -> None:
    chan, transport, _ = channel()
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS + 1))
    chan.dataReceived(b"GET /_matrix/client/versions HTTP/1.1\r\n" + headers + b"\r\n")
    status, _, body = answer(transport)
    assert (status, body["errcode"]) == (431, "M_TOO_LARGE")
    assert str(MAX_HEADERS) in body["error"]


@pytest.mark.parametrize(
    "data",
    [
        b"GET /a b HTTP/1.1\r\n\r\n",  # four parts
        b"GET /_matrix/client/versions HTTP/1.1\r\nno colon here\r\n\r\n",
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    ],
)
def test_a_malformed_head_is_answered_400_in_json(data: bytes) -> None:
    chan, transport, process = channel()
    chan.dataReceived(data)
    status, headers, body = answer(transport)
    assert (status, body["errcode"], headers[b"connection"]) == (400, "M_UNKNOWN", b"close")
    assert metric(process, 400) == 1


def test_the_refused_client_may_read_its_answer_before_the_close() -> None:
    """Closing a socket with unread input resets it, and a reset can destroy the answer on
    its way: the portal closes its writing half, reads (and drops) what the client is still
    sending, and cuts the connection after LINGER_SECONDS at most."""
    transport = HalfClosingTransport()
    chan, _, process = channel(transport)
    chan.dataReceived(b"GET " + long_target(17_000))
    assert transport.write_closed and not transport.disconnecting
    written = transport.value()
    chan.dataReceived(b"y" * 100_000 + b" HTTP/1.1\r\nHost: p\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    assert transport.value() == written  # dropped: no second answer, no second request
    process.reactor.advance(LINGER_SECONDS)
    assert transport.aborted


def test_an_ordinary_request_after_the_limits_changed_nothing() -> None:
    """The channel still serves what it served (Twisted's own limits are kept)."""
    chan, transport, _ = channel()
    chan.dataReceived(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: p\r\n\r\n")
    assert not transport.value().startswith((b"HTTP/1.1 400", b"HTTP/1.1 414", b"HTTP/1.1 431"))
