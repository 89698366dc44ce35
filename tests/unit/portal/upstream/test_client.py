"""The portal's upstream client (Twisted's Agent over a tuned pool) on an in-memory reactor:
one request per exchange, never a body sent twice, the pool's reuse, expiry and caps, the
size limit, timeouts, and every failure mapped to a 502/504 that quotes nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from twisted.internet import defer, error
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import RequestTransmissionFailed, ResponseNeverReceived
from twisted.web.iweb import UNKNOWN_LENGTH

from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.upstream import Timeouts, UpstreamSettings
from synapse_base_cs_url.portal.errors import MatrixError
from synapse_base_cs_url.portal.upstream.client import BodyRefused, Upstream, UpstreamResponse
from synapse_base_cs_url.portal.upstream.failures import as_matrix_error

UPSTREAM_LOGGER = "synapse_base_cs_url.portal"

HS = Homeserver(name="hs1", base_url="https://hs1.example", proxy_url="http://127.0.0.1:8008")
LOGIN = b"/_matrix/client/v3/login"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

_trial = SynchronousTestCase()
success_of = _trial.successResultOf
failure_of = _trial.failureResultOf


class Homeservers:
    """The far end of the in-memory reactor: accepts the client's connections and answers."""

    def __init__(self, settings: UpstreamSettings | None = None) -> None:
        self.reactor = MemoryReactorClock()
        self.upstream = Upstream(
            self.reactor, Timeouts(connect=5, total=30), settings or UpstreamSettings()
        )
        self.accepted: list[tuple[Any, StringTransport]] = []

    def request(
        self, method: bytes = b"POST", path: bytes = LOGIN, body: bytes | None = b"{}"
    ) -> defer.Deferred[UpstreamResponse]:
        d = defer.ensureDeferred(self.upstream.request(HS, method, path, (), body))
        self.reactor.advance(0)
        return d

    @property
    def connections_made(self) -> int:
        return len(self.reactor.tcpClients)

    def accept(self) -> tuple[Any, StringTransport]:
        """Connect the newest connection attempt; return its protocol and transport."""
        _, _, factory, _, _ = self.reactor.tcpClients[len(self.accepted)]
        protocol = factory.buildProtocol(None)
        # lenient: like a TCP transport, resumeProducing after loseConnection is harmless.
        transport = StringTransport(lenient=True)
        protocol.makeConnection(transport)
        self.accepted.append((protocol, transport))
        return protocol, transport

    def answer(self, data: bytes, index: int = -1) -> None:
        self.accepted[index][0].dataReceived(data)

    def close(self, index: int = -1, reason: Exception | None = None) -> None:
        protocol, transport = self.accepted[index]
        transport.loseConnection()
        protocol.connectionLost(Failure(reason or error.ConnectionDone()))


def matrix_error(d: defer.Deferred[Any]) -> MatrixError:
    value = failure_of(d, MatrixError).value
    assert isinstance(value, MatrixError)
    return value


def test_a_login_is_one_request_on_one_connection() -> None:
    hs = Homeservers()
    d = hs.request(body=b'{"type": "m.login.password"}')
    _, transport = hs.accept()
    sent = transport.value()
    assert sent.startswith(b"POST /_matrix/client/v3/login HTTP/1.1\r\n")
    assert b"Content-Length: 28\r\n" in sent
    assert sent.endswith(b'\r\n\r\n{"type": "m.login.password"}')
    hs.answer(OK)
    response = success_of(d)
    assert (response.status, response.body) == (200, b"{}")
    assert response.headers.getRawHeaders(b"content-type") == [b"application/json"]


def test_a_kept_alive_connection_is_reused() -> None:
    hs = Homeservers()
    first = hs.request()
    hs.accept()
    hs.answer(OK)
    success_of(first)
    second = hs.request()
    assert hs.connections_made == 1  # the same connection, no new one
    hs.answer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert success_of(second).status == 404
    assert hs.accepted[0][1].value().count(b"POST ") == 2


def test_a_post_is_never_sent_twice_when_a_reused_connection_closes() -> None:
    """The homeserver may have processed the first copy: a second would make another device,
    or fail a single-use login token. The client gets a 502 instead."""
    hs = Homeservers()
    first = hs.request()
    hs.accept()
    hs.answer(OK)
    success_of(first)
    second = hs.request(body=b'{"type": "m.login.token", "token": "syl_once"}')
    hs.close()  # closed as the request went out, before any answer
    hs.reactor.advance(1)
    assert hs.connections_made == 1  # no second connection to send it again on
    assert hs.accepted[0][1].value().count(b"syl_once") == 1
    err = matrix_error(second)
    assert (err.status, err.errcode) == (502, "M_UNKNOWN")
    assert "connection closed before answering" in err.message


def test_a_get_without_a_body_is_retried_on_a_new_connection() -> None:
    """Idempotent requests are safe to send again (Twisted's own rule)."""
    hs = Homeservers()
    first = hs.request(b"GET", b"/_matrix/client/versions", None)
    hs.accept()
    hs.answer(OK)
    success_of(first)
    again = hs.request(b"GET", b"/_matrix/client/versions", None)
    hs.close()
    hs.reactor.advance(0)
    assert hs.connections_made == 2
    hs.accept()
    hs.answer(OK)
    assert success_of(again).status == 200


def test_idle_connections_expire() -> None:
    hs = Homeservers(UpstreamSettings(idle_timeout=10))
    d = hs.request()
    _, transport = hs.accept()
    hs.answer(OK)
    success_of(d)
    hs.reactor.advance(9)
    assert not transport.disconnecting
    hs.reactor.advance(2)
    assert transport.disconnecting
    hs.close()
    hs.request()
    assert hs.connections_made == 2


def test_idle_connections_are_capped_per_homeserver() -> None:
    hs = Homeservers(UpstreamSettings(max_idle_connections=1))
    pending = [hs.request(), hs.request()]
    assert hs.connections_made == 2
    hs.accept()
    hs.accept()
    hs.answer(OK, 0)
    hs.answer(OK, 1)
    for d in pending:
        success_of(d)
    # Only one of the two is kept idle; the other is closed.
    assert [t.disconnecting for _, t in hs.accepted].count(True) == 1


def test_a_connection_the_homeserver_closed_while_idle_is_not_reused() -> None:
    hs = Homeservers()
    d = hs.request()
    hs.accept()
    hs.answer(OK)
    success_of(d)
    hs.close()
    hs.request()
    assert hs.connections_made == 2


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n",
            b"hello",
        ),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + OK, b"{}"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", b"ok"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
)
def test_body_framings(answer: bytes, body: bytes) -> None:
    hs = Homeservers()
    d = hs.request()
    hs.accept()
    hs.answer(answer)
    assert success_of(d).body == body


def test_a_body_until_close() -> None:
    hs = Homeservers()
    d = hs.request()
    hs.accept()
    hs.answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial ")
    hs.answer(b"body")
    assert not d.called
    hs.close()
    assert success_of(d).body == b"partial body"


@pytest.mark.parametrize(
    "answer",
    [
        b"SMTP 220 hello\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        # Secrets where a status line or header should be must not be quoted anywhere:
        b'{"access_token": "syt_secret"}\r\n\r\n',
        b"HTTP/1.1 200 OK\r\nsyt_secret\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: syt_secret\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nsyt_secret\r\n",
    ],
)
def test_invalid_answers_are_502_and_close_the_connection(answer: bytes) -> None:
    hs = Homeservers()
    d = hs.request()
    _, transport = hs.accept()
    hs.answer(answer)
    if not d.called:  # some parsers notice only when the connection ends
        hs.close()
    err = matrix_error(d)
    assert (err.status, err.errcode) == (502, "M_UNKNOWN")
    assert "Homeserver 'hs1'" in err.message
    assert "secret" not in err.message
    assert transport.disconnecting or transport.disconnected


def test_closed_in_the_middle_of_the_answer() -> None:
    hs = Homeservers()
    d = hs.request()
    hs.accept()
    hs.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    hs.close(reason=error.ConnectionLost())
    err = matrix_error(d)
    assert err.status == 502
    assert "connection closed in the middle of the answer" in err.message


def test_an_answer_over_the_size_limit_is_502_and_not_kept() -> None:
    hs = Homeservers(UpstreamSettings(max_response_size=10))
    d = hs.request()
    _, transport = hs.accept()
    hs.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
    assert "response body too large" in matrix_error(d).message
    assert transport.disconnecting
    # Without a Content-Length: refused as soon as the limit is passed.
    d = hs.request()
    _, transport = hs.accept()
    hs.answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n123456\r\n")
    assert not d.called
    hs.answer(b"6\r\n123456\r\n")
    assert "response body too large" in matrix_error(d).message
    assert transport.disconnecting


def test_a_slow_homeserver_is_504_after_the_total_timeout() -> None:
    hs = Homeservers()
    d = hs.request()
    _, transport = hs.accept()
    hs.reactor.advance(29)
    assert not d.called
    hs.reactor.advance(1)
    err = matrix_error(d)
    assert (err.status, err.message) == (504, "Homeserver 'hs1' did not answer within 30s")
    assert transport.disconnecting or transport.disconnected


def test_a_homeserver_that_does_not_accept_is_504_after_the_connect_timeout() -> None:
    hs = Homeservers()
    d = hs.request()
    _, _, factory, timeout, _ = hs.reactor.tcpClients[0]
    assert timeout == 5
    factory.clientConnectionFailed(None, Failure(error.TimeoutError()))
    hs.reactor.advance(1)
    err = matrix_error(d)
    assert (err.status, err.message) == (
        504,
        "Homeserver 'hs1' did not accept a connection within 5s",
    )


def test_a_refused_connection_is_502_naming_the_homeserver() -> None:
    hs = Homeservers()
    d = hs.request()
    _, _, factory, _, _ = hs.reactor.tcpClients[0]
    factory.clientConnectionFailed(None, Failure(error.ConnectionRefusedError()))
    hs.reactor.advance(1)
    err = matrix_error(d)
    assert err.status == 502
    assert "Homeserver 'hs1' is unreachable: ConnectionRefusedError" in err.message


def test_cancelling_aborts_the_connection() -> None:
    hs = Homeservers()
    d = hs.request()
    _, transport = hs.accept()
    d.cancel()
    failure_of(d, defer.CancelledError)
    assert transport.disconnecting or transport.disconnected


# --- a client that leaves while the portal is still connecting ------------------------------
# Twisted fails a cancelled connection attempt with ConnectingCancelledError, which is not a
# CancelledError: it must still be the client going away (499), never the homeserver's 502.


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_cancelled_while_connecting_is_cancelled_and_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hs = Homeservers()
    with caplog.at_level(logging.DEBUG, logger=UPSTREAM_LOGGER):
        d = hs.request()
        assert hs.connections_made == 1 and not hs.accepted  # still connecting
        d.cancel()
        hs.reactor.advance(1)
        failure_of(d, defer.CancelledError)
    assert warnings_in(caplog) == []
    assert hs.reactor.connectors[0].stoppedConnecting  # the connection attempt itself is given up


def test_a_cancelled_open_while_connecting_is_cancelled_and_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hs = Homeservers()
    with caplog.at_level(logging.DEBUG, logger=UPSTREAM_LOGGER):
        d = defer.ensureDeferred(
            hs.upstream.open(
                HS, b"GET", b"/_matrix/client/v3/sync", headers=(), body=None, timeout=30
            )
        )
        hs.reactor.advance(0)
        assert hs.connections_made == 1 and not hs.accepted
        d.cancel()
        hs.reactor.advance(1)
        failure_of(d, defer.CancelledError)
    assert warnings_in(caplog) == []


def test_the_timeout_while_connecting_is_still_504() -> None:
    """Cancelled by the portal's own timer (``open``'s timeout, shorter than the connect
    timeout) rather than by the client: the homeserver's 504, not a cancellation."""
    hs = Homeservers()
    d = defer.ensureDeferred(
        hs.upstream.open(HS, b"GET", b"/_matrix/client/v3/sync", headers=(), body=None, timeout=2)
    )
    hs.reactor.advance(0)
    hs.reactor.advance(2)
    err = matrix_error(d)
    assert (err.status, err.message) == (504, "Homeserver 'hs1' did not answer within 2s")


CONNECTING_CANCELLED = error.ConnectingCancelledError(("127.0.0.1", 8008))


@pytest.mark.parametrize(
    "exc",
    [
        CONNECTING_CANCELLED,
        ResponseNeverReceived([Failure(CONNECTING_CANCELLED)]),
        RequestTransmissionFailed([Failure(CONNECTING_CANCELLED)]),
        ResponseNeverReceived([Failure(error.ConnectionDone()), Failure(CONNECTING_CANCELLED)]),
    ],
    ids=["bare", "response-never-received", "request-transmission-failed", "among-others"],
)
def test_a_cancelled_connection_attempt_is_the_client_leaving(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=UPSTREAM_LOGGER):
        mapped = as_matrix_error(HS, exc, connect_timeout=5.0)
    assert isinstance(mapped, defer.CancelledError), mapped
    assert warnings_in(caplog) == []


# --- every failure is a Matrix error naming the homeserver -----------------------------------


@pytest.mark.parametrize(
    ("exc", "status", "words"),
    [
        (error.ConnectionRefusedError(), 502, "is unreachable: ConnectionRefusedError"),
        (error.DNSLookupError("no such host"), 502, "is unreachable: DNSLookupError"),
        (error.TimeoutError(), 504, "did not accept a connection within 5s"),
        (
            ResponseNeverReceived([Failure(error.ConnectionDone())]),
            502,
            "connection closed before answering",
        ),
        (ResponseNeverReceived([Failure(ValueError("x"))]), 502, "sent an invalid answer"),
        (RuntimeError("surprise"), 502, "is unreachable: RuntimeError"),
    ],
)
def test_upstream_failures(exc: Exception, status: int, words: str) -> None:
    mapped = as_matrix_error(HS, exc, connect_timeout=5.0)
    assert isinstance(mapped, MatrixError)
    assert (mapped.status, mapped.errcode) == (status, "M_UNKNOWN")
    assert "Homeserver 'hs1'" in mapped.message
    assert words in mapped.message
    # An exception's own text (an internal host name, a URI and its query) never reaches
    # the client.
    for text in ("no such host", "surprise"):
        assert text not in mapped.message


def test_cancellation_is_not_an_error_for_the_client() -> None:
    cancelled = defer.CancelledError()
    assert as_matrix_error(HS, cancelled, connect_timeout=5.0) is cancelled
    wrapped = ResponseNeverReceived([Failure(defer.CancelledError())])
    assert isinstance(as_matrix_error(HS, wrapped, connect_timeout=5.0), defer.CancelledError)


class FailingBody:
    """A streamed request body whose producer gives up with ``exc``."""

    length = UNKNOWN_LENGTH

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def startProducing(self, consumer: Any) -> defer.Deferred[None]:
        return defer.fail(self.exc)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


@pytest.mark.parametrize(
    ("exc", "raised"),
    [
        (BodyRefused("over the limit"), BodyRefused),  # the caller answers it (413)
        (RuntimeError("a producer bug"), MatrixError),  # a 502, never a raw exception
    ],
)
def test_a_body_that_fails_while_sent(exc: Exception, raised: type[Exception]) -> None:
    homeservers = Homeservers()
    d = defer.ensureDeferred(
        homeservers.upstream.open(
            HS,
            b"POST",
            b"/_matrix/media/v3/upload",
            headers=(),
            body=FailingBody(exc),  # type: ignore[arg-type]
            timeout=30,
        )
    )
    homeservers.reactor.advance(0)
    homeservers.accept()
    failure = failure_of(d, raised)
    if raised is MatrixError:
        assert failure.value.status == 502
