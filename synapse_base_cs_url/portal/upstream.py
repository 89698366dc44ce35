"""HTTP requests from the portal to its homeservers, with connect and total timeouts.

Every failure becomes a :class:`~synapse_base_cs_url.portal.errors.MatrixError` naming the
homeserver: 502 when it cannot be reached or breaks the connection, 504 when it is too slow.
Connections are kept alive and re-used, so a proxied login costs one round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import attr
from twisted.internet import defer, error
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    ResponseFailed,
    ResponseNeverReceived,
    readBody,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer  # type: ignore[import-untyped]

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config import Homeserver, Timeouts

logger = logging.getLogger(__name__)


@attr.s(auto_attribs=True, frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers: Headers
    body: bytes


@implementer(IBodyProducer)
class BytesProducer:
    """Send a body that is already in memory, in one write."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> defer.Deferred[None]:
        consumer.write(self._body)
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class Upstream:
    """One agent (and connection pool) for every homeserver."""

    def __init__(self, reactor: Any, timeouts: Timeouts) -> None:
        self._reactor = reactor
        self._timeouts = timeouts
        self._pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
        self._pool.maxPersistentPerHost = 32
        # Close idle connections well before a homeserver (or a proxy in between) would.
        self._pool.cachedConnectionTimeout = 30
        self._agent = Agent(reactor, connectTimeout=timeouts.connect, pool=self._pool)  # type: ignore[no-untyped-call]

    async def request(
        self,
        homeserver: Homeserver,
        method: bytes,
        path_and_query: bytes,
        headers: Iterable[tuple[bytes, list[bytes]]] = (),
        body: bytes | None = None,
    ) -> UpstreamResponse:
        """``method`` ``proxy_url + path_and_query`` on ``homeserver``; never hangs."""
        url = homeserver.proxy_url.encode() + path_and_query
        d = defer.ensureDeferred(self._exchange(homeserver, method, url, headers, body))
        d.addTimeout(self._timeouts.total, self._reactor)
        try:
            return await d
        except defer.TimeoutError:
            raise errors.timed_out(homeserver.name, self._timeouts.total) from None
        except error.TimeoutError:
            raise errors.timed_out(homeserver.name, self._timeouts.connect) from None
        except (error.ConnectError, error.DNSLookupError) as e:
            raise errors.unreachable(homeserver.name, _describe(e)) from None
        except (ResponseFailed, ResponseNeverReceived) as e:
            raise errors.unreachable(
                homeserver.name, f"connection closed before a full answer ({_describe(e)})"
            ) from None

    async def _exchange(
        self,
        homeserver: Homeserver,
        method: bytes,
        url: bytes,
        headers: Iterable[tuple[bytes, list[bytes]]],
        body: bytes | None,
    ) -> UpstreamResponse:
        header_list = list(headers)
        for attempt in (1, 2):
            producer: Any = BytesProducer(body) if body is not None else None
            try:
                response: IResponse = await self._agent.request(
                    method, url, Headers(dict(header_list)), producer
                )
            except ResponseNeverReceived as e:
                if _cancelled(e):
                    # Our own timeout (or the client leaving). Re-trying would outlive it;
                    # a plain CancelledError lets addTimeout report it as a timeout.
                    raise defer.CancelledError() from None
                # Almost always a kept-alive connection the homeserver closed just as we
                # re-used it. One retry keeps that race from failing a login; at worst a
                # login that did reach the homeserver is repeated (one extra device).
                if attempt == 2:
                    raise
                logger.debug("retrying %s on %s after a stale connection", method, homeserver.name)
                continue
            try:
                content: bytes = await readBody(response)
            except ResponseFailed as e:
                if _cancelled(e):
                    raise defer.CancelledError() from None
                raise
            return UpstreamResponse(response.code, response.headers, content)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self._pool.closeCachedConnections()  # type: ignore[no-untyped-call]


def _cancelled(e: BaseException) -> bool:
    return any(r.check(defer.CancelledError) for r in getattr(e, "reasons", ()))


def _describe(e: BaseException) -> str:
    reasons = getattr(e, "reasons", None)
    if reasons:
        return "; ".join(_describe(r.value) for r in reasons)
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
