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

import attr
from twisted.internet import defer
from twisted.web.client import Agent, HTTPConnectionPool, RequestGenerationFailed
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.upstream import Timeouts, UpstreamSettings
from synapse_base_cs_url.portal.reactor import PortalReactor
from synapse_base_cs_url.portal.upstream.bodies import AgentResponse, BytesProducer, read_body
from synapse_base_cs_url.portal.upstream.endpoints import HomeserverEndpoints
from synapse_base_cs_url.portal.upstream.failures import as_matrix_error
from synapse_base_cs_url.portal.upstream.health import HomeserverHealth

logger = logging.getLogger("synapse_base_cs_url.portal.upstream")

T = TypeVar("T")


@attr.s(auto_attribs=True, frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers: Headers
    body: bytes


class Upstream:
    """The portal's HTTP client for every homeserver."""

    def __init__(
        self,
        reactor: PortalReactor,
        timeouts: Timeouts,
        settings: UpstreamSettings = UpstreamSettings(),  # noqa: B008
        *,
        health: HomeserverHealth | None = None,
    ) -> None:
        """``health``: each homeserver's, fed by every exchange; a homeserver it marks down
        is answered ``503`` at once, and probed until it answers."""
        self._reactor = reactor
        self.health = health
        if health is not None:
            health.start_probing(self._probe)
        self._timeouts = timeouts
        self._max_response_size = settings.max_response_size
        pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
        pool.maxPersistentPerHost = settings.max_idle_connections
        pool.cachedConnectionTimeout = settings.idle_timeout  # type: ignore[assignment]
        # Twisted re-tries only idempotent requests without a body (see the module docstring).
        pool.retryAutomatically = True
        self.pool = pool
        self._agent = Agent.usingEndpointFactory(  # type: ignore[no-untyped-call]
            reactor, HomeserverEndpoints(reactor, timeouts.connect), pool=pool
        )

    async def request(
        self,
        homeserver: Homeserver,
        method: bytes,
        path_and_query: bytes,
        headers: Iterable[tuple[bytes, list[bytes]]] = (),
        body: bytes | None = None,
        *,
        timeout: float | None = None,
    ) -> UpstreamResponse:
        """``method`` ``proxy_url + path_and_query`` on ``homeserver``; never hangs: the whole
        exchange is bounded by ``timeout`` (``timeouts.total`` unless given; running out
        counts against the homeserver's health, as a refusal does)."""

        self._gate(homeserver)

        async def exchange() -> UpstreamResponse:
            response = await self._send(homeserver, method, path_and_query, headers, body)
            content = await read_body(response, self._max_response_size)
            return UpstreamResponse(response.code, response.headers, content)

        return await self._bounded(homeserver, exchange(), timeout or self._timeouts.total)

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
        self._gate(homeserver)
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
            result = await d
        except Exception as e:
            if timed_out:
                self._failed(homeserver, f"no answer within {timeout:g}s")
                raise errors.timed_out(homeserver.name, timeout) from None
            if isinstance(e, RequestGenerationFailed) and e.reasons:
                reason = e.reasons[0].value
                if isinstance(reason, (BodyRefused, defer.CancelledError)):
                    raise reason from None  # the caller's to answer
            error = as_matrix_error(homeserver, e, self._timeouts.connect)
            # A caller that gave up (a client gone, a resolution answered by another
            # homeserver) is nobody's failure; Twisted wraps its cancellation
            # (ResponseNeverReceived, ConnectingCancelledError): read the mapped error.
            if isinstance(error, errors.MatrixError):
                self._failed(homeserver, error.message)
            raise error from None
        else:
            if self.health is not None:
                self.health.succeeded(homeserver.name)
            return result
        finally:
            if timer.active():
                timer.cancel()

    def _gate(self, homeserver: Homeserver) -> None:
        """``503`` at once for a homeserver marked down (nothing waits for it)."""
        health = self.health
        if health is not None and health.is_down(homeserver.name):
            raise errors.homeserver_down(homeserver.name, health.probe_interval)

    def _failed(self, homeserver: Homeserver, why: str) -> None:
        if self.health is not None:
            self.health.failed(homeserver.name, why)

    async def _probe(self, homeserver: Homeserver) -> bool:
        """Whether a homeserver marked down answers ``GET /health`` (below ``500``) within
        ``timeouts.connect``; nothing else is sent to it meanwhile."""

        async def answer() -> int:
            response = await self._send(homeserver, b"GET", b"/health", (), None)
            await read_body(response, self._max_response_size)
            return int(response.code)

        # The headers and the body within the bound: a probe that stalls is a failed one.
        d = defer.ensureDeferred(answer())
        timer = self._reactor.callLater(self._timeouts.connect, d.cancel)
        try:
            status = await d
        except Exception:
            return False
        finally:
            if timer.active():
                timer.cancel()
        return status < 500

    async def close(self) -> None:
        if self.health is not None:
            self.health.close()
        await self.pool.closeCachedConnections()  # type: ignore[no-untyped-call]


class BodyRefused(Exception):
    """Raised by a request's body producer that will not send the rest (an upload over its
    limit, say): :meth:`Upstream.open` raises it as it is, for the caller to answer."""
