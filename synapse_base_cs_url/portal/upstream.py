"""HTTP requests from the portal to its homeservers, with connect and total timeouts.

Every failure becomes a :class:`~synapse_base_cs_url.portal.errors.MatrixError` naming the
homeserver: 502 when it cannot be reached, breaks the connection or answers nonsense, 504
when it is too slow. Connections are kept alive and re-used (see ``http1_client``), so a
proxied login costs one round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from twisted.internet import defer, error

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config import Homeserver, Timeouts
from synapse_base_cs_url.portal.http1_client import (
    ConnectionPool,
    Origin,
    UpstreamClosed,
    UpstreamProtocolError,
    UpstreamResponse,
)

logger = logging.getLogger(__name__)

__all__ = ["Upstream", "UpstreamResponse"]


class Upstream:
    """One connection pool for every homeserver."""

    def __init__(self, reactor: Any, timeouts: Timeouts) -> None:
        self._reactor = reactor
        self._timeouts = timeouts
        self._pool = ConnectionPool(reactor, connect_timeout=timeouts.connect)
        self._origins: dict[str, Origin] = {}

    async def request(
        self,
        homeserver: Homeserver,
        method: bytes,
        path_and_query: bytes,
        headers: Iterable[tuple[bytes, list[bytes]]] = (),
        body: bytes | None = None,
    ) -> UpstreamResponse:
        """``method`` ``proxy_url + path_and_query`` on ``homeserver``; never hangs."""
        origin = self._origins.get(homeserver.proxy_url)
        if origin is None:
            origin = self._origins[homeserver.proxy_url] = Origin.from_url(homeserver.proxy_url)
        d = defer.ensureDeferred(self._pool.request(origin, method, path_and_query, headers, body))
        timed_out = False

        def on_timeout() -> None:
            nonlocal timed_out
            timed_out = True
            d.cancel()

        timer = self._reactor.callLater(self._timeouts.total, on_timeout)
        try:
            return await d
        except Exception as e:
            if timed_out:
                raise errors.timed_out(homeserver.name, self._timeouts.total) from None
            raise _as_matrix_error(homeserver, e, self._timeouts.connect) from None
        finally:
            if timer.active():
                timer.cancel()

    async def close(self) -> None:
        self._pool.close()


def _as_matrix_error(homeserver: Homeserver, e: Exception, connect_timeout: float) -> Exception:
    if isinstance(e, defer.CancelledError):
        return e  # the client went away; nobody to answer
    if isinstance(e, error.TimeoutError):
        return errors.connect_timed_out(homeserver.name, connect_timeout)
    if isinstance(e, (error.ConnectError, error.DNSLookupError)):
        return errors.unreachable(homeserver.name, _describe(e))
    if isinstance(e, UpstreamClosed):
        return errors.unreachable(homeserver.name, str(e))
    if isinstance(e, UpstreamProtocolError):
        return errors.bad_gateway(homeserver.name, str(e))
    logger.warning("unexpected error talking to %s: %r", homeserver.name, e)
    return errors.unreachable(homeserver.name, _describe(e))


def _describe(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
