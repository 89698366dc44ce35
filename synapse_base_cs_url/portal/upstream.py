"""HTTP from the portal to its homeservers: Twisted's ``Agent`` over a tuned connection pool.

As Synapse's own HTTP clients do: one ``HTTPConnectionPool`` keeps connections to each
homeserver alive between requests (at most ``upstream.max_idle_connections`` idle ones per
homeserver, each closed after ``upstream.idle_timeout`` seconds unused), and every answer is
read with a size limit (``upstream.max_response_size``). Bodies are streamed by the Agent, so
a caller that needs streaming can have it.

**No request with a body is ever sent twice.** The pool re-tries a request on a new
connection only when it is idempotent and has no body (Twisted's ``_shouldRetry``: ``GET``,
``HEAD``, ``OPTIONS``, ``DELETE``, ``TRACE``); a ``POST /login`` that meets a kept-alive
connection the homeserver has just closed fails with a 502 rather than risk a second device
or a spent single-use login token. ``upstream.idle_timeout`` is kept shorter than the
homeservers' own keep-alive timeouts so that this race is rare.

Every failure becomes a :class:`~synapse_base_cs_url.portal.errors.MatrixError` naming the
homeserver: 502 when it cannot be reached, breaks the connection or answers nonsense, 504
when it is too slow. The messages never quote what the homeserver sent.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar, cast
from typing import Protocol as TypingProtocol

import attr
from twisted.internet import defer, error
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    RequestGenerationFailed,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config import Homeserver, Timeouts, UpstreamSettings
from synapse_base_cs_url.portal.reactor import PortalReactor

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Failures that mean "the connection went away", as opposed to "the answer was not HTTP".
_CLOSED = (error.ConnectionDone, error.ConnectionLost, PotentialDataLoss)


class AgentResponse(TypingProtocol):
    """What the portal reads of the Agent's ``IResponse`` (a zope interface, which mypy
    cannot check calls against)."""

    code: int
    headers: Headers
    length: int | object

    def deliverBody(self, protocol: Protocol) -> None: ...


@attr.s(auto_attribs=True, frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers: Headers
    body: bytes


class BodyTooLarge(Exception):
    """The homeserver's answer was longer than ``upstream.max_response_size``."""


@implementer(IBodyProducer)
class BytesProducer:
    """A body already in memory, written in one go (``FileBodyProducer`` would wait a
    reactor iteration per 64 kB for its cooperator)."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: object) -> defer.Deferred[None]:
        consumer.write(self._body)  # type: ignore[attr-defined]
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class BoundedBodyReader(Protocol):
    """Collects a response body into ``finished``, failing with :class:`BodyTooLarge` (and
    closing the connection) as soon as it passes ``limit`` bytes, as Synapse's
    ``read_body_with_max_size`` does."""

    def __init__(self, finished: defer.Deferred[bytes], limit: int) -> None:
        self._finished = finished
        self._limit = limit
        self._parts: list[bytes] = []
        self._length = 0

    def dataReceived(self, data: bytes) -> None:
        if self._finished.called:
            return
        self._length += len(data)
        if self._length > self._limit:
            self._finished.errback(BodyTooLarge())
            self.abort()
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._finished.called:
            return
        # PotentialDataLoss: a body framed by the connection's end, which is all it can be.
        if isinstance(reason.value, (ResponseDone, PotentialDataLoss)):
            self._finished.callback(b"".join(self._parts))
        else:
            self._finished.errback(reason)

    def abort(self) -> None:
        """Close the connection: what is left of the body is not wanted, and a connection
        with an unread body cannot be reused."""
        _abort(self)


def read_body(response: AgentResponse, limit: int) -> defer.Deferred[bytes]:
    """The whole body of ``response``, at most ``limit`` bytes; cancelling closes the
    connection."""
    if isinstance(response.length, int) and response.length > limit:
        response.deliverBody(_Discard())  # closes the connection without reading it
        return defer.fail(BodyTooLarge())
    reader: BoundedBodyReader | None = None

    def cancel(d: defer.Deferred[bytes]) -> None:
        if reader is not None:
            reader.abort()

    finished: defer.Deferred[bytes] = defer.Deferred(cancel)
    reader = BoundedBodyReader(finished, limit)
    response.deliverBody(reader)
    return finished


def discard_body(response: AgentResponse) -> None:
    """Nobody will read ``response``'s body: close its connection."""
    response.deliverBody(_Discard())


class _Discard(Protocol):
    def connectionMade(self) -> None:
        _abort(self)


def _abort(protocol: Protocol) -> None:
    # The body's transport proxies the connection's ``loseConnection`` (an ITransport,
    # a zope interface mypy cannot call through).
    transport: Any = protocol.transport
    if transport is not None:
        transport.loseConnection()


class Upstream:
    """The portal's HTTP client for every homeserver."""

    def __init__(
        self,
        reactor: PortalReactor,
        timeouts: Timeouts,
        settings: UpstreamSettings = UpstreamSettings(),  # noqa: B008
    ) -> None:
        self._reactor = reactor
        self._timeouts = timeouts
        self._max_response_size = settings.max_response_size
        pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
        pool.maxPersistentPerHost = settings.max_idle_connections
        pool.cachedConnectionTimeout = settings.idle_timeout  # type: ignore[assignment]
        # Twisted re-tries only idempotent requests without a body (see the module docstring).
        pool.retryAutomatically = True
        self.pool = pool
        self._agent = Agent(  # type: ignore[no-untyped-call]
            reactor, connectTimeout=timeouts.connect, pool=pool
        )

    async def request(
        self,
        homeserver: Homeserver,
        method: bytes,
        path_and_query: bytes,
        headers: Iterable[tuple[bytes, list[bytes]]] = (),
        body: bytes | None = None,
    ) -> UpstreamResponse:
        """``method`` ``proxy_url + path_and_query`` on ``homeserver``; never hangs: the whole
        exchange is bounded by ``timeouts.total``."""

        async def exchange() -> UpstreamResponse:
            response = await self._send(homeserver, method, path_and_query, headers, body)
            content = await read_body(response, self._max_response_size)
            return UpstreamResponse(response.code, response.headers, content)

        return await self._bounded(homeserver, exchange(), self._timeouts.total)

    async def open(
        self,
        homeserver: Homeserver,
        method: bytes,
        path_and_query: bytes,
        *,
        headers: Iterable[tuple[bytes, list[bytes]]],
        body: IBodyProducer | bytes | None,
        timeout: float,
    ) -> AgentResponse:
        """Send a request whose answer is streamed by the caller: the answer's status and
        headers within ``timeout`` seconds (its body as it comes, via ``deliverBody``)."""
        sent = self._send(homeserver, method, path_and_query, headers, body)
        return await self._bounded(homeserver, sent, timeout)

    def _send(
        self,
        homeserver: Homeserver,
        method: bytes,
        path_and_query: bytes,
        headers: Iterable[tuple[bytes, list[bytes]]],
        body: IBodyProducer | bytes | None,
    ) -> defer.Deferred[AgentResponse]:
        request_headers = Headers()
        for name, values in headers:
            request_headers.setRawHeaders(name, values)
        if isinstance(body, bytes):
            producer: IBodyProducer | None = cast(IBodyProducer, BytesProducer(body))
        else:
            producer = body
        url = homeserver.proxy_url.encode() + path_and_query
        return cast(
            "defer.Deferred[AgentResponse]",
            self._agent.request(method, url, request_headers, producer),
        )

    async def _bounded(
        self,
        homeserver: Homeserver,
        work: defer.Deferred[T] | Coroutine[Any, Any, T],
        timeout: float,
    ) -> T:
        """``work``, cancelled after ``timeout`` seconds; its failures as the client's answer
        (a body producer's own refusal as it is, for the caller to answer)."""
        d: defer.Deferred[T] = defer.ensureDeferred(work)
        timed_out = False

        def on_timeout() -> None:
            nonlocal timed_out
            timed_out = True
            d.cancel()

        timer = self._reactor.callLater(timeout, on_timeout)
        try:
            return await d
        except Exception as e:
            if timed_out:
                raise errors.timed_out(homeserver.name, timeout) from None
            if isinstance(e, RequestGenerationFailed) and e.reasons:
                reason = e.reasons[0].value
                if isinstance(reason, (BodyRefused, defer.CancelledError)):
                    raise reason from None  # the caller's to answer
            raise as_matrix_error(homeserver, e, self._timeouts.connect) from None
        finally:
            if timer.active():
                timer.cancel()

    async def close(self) -> None:
        await self.pool.closeCachedConnections()  # type: ignore[no-untyped-call]


class BodyRefused(Exception):
    """Raised by a request's body producer that will not send the rest (an upload over its
    limit, say): :meth:`Upstream.open` raises it as it is, for the caller to answer."""


def as_matrix_error(homeserver: Homeserver, e: Exception, connect_timeout: float) -> Exception:
    """The client's answer for a failed exchange with ``homeserver``."""
    if isinstance(e, defer.CancelledError):
        return e  # the client went away; nobody to answer
    if isinstance(e, error.TimeoutError):
        return errors.connect_timed_out(homeserver.name, connect_timeout)
    if isinstance(e, (error.ConnectError, error.DNSLookupError)):
        return errors.unreachable(homeserver.name, _describe(e))
    if isinstance(e, BodyTooLarge):
        return errors.bad_gateway(homeserver.name, "response body too large")
    if isinstance(e, (ResponseFailed, RequestTransmissionFailed)):
        reasons: list[Failure] = list(e.reasons)
        if any(isinstance(r.value, defer.CancelledError) for r in reasons):
            return defer.CancelledError()
    if isinstance(e, ResponseFailed):  # also ResponseNeverReceived
        if any(isinstance(r.value, _CLOSED) for r in reasons):
            where = (
                "before answering"
                if isinstance(e, ResponseNeverReceived)
                else "in the middle of the answer"
            )
            return errors.unreachable(homeserver.name, f"connection closed {where}")
        return errors.bad_gateway(homeserver.name, "not a valid HTTP/1.1 answer")
    if isinstance(e, RequestTransmissionFailed):
        return errors.unreachable(homeserver.name, "connection closed before answering")
    logger.warning("unexpected error talking to %s: %r", homeserver.name, e)
    return errors.unreachable(homeserver.name, _describe(e))


def _describe(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
