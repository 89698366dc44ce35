"""Client connections: deadlines for slow clients, a cap on how many are open, and draining.

Twisted keeps an idle or half-sent connection for 12 hours by default, and its idle timer
restarts with every byte, so a client trickling a header a byte at a time holds a
connection (a file descriptor) for as long as it likes. Here:

- ``connections.header_timeout``: from a request's first byte to the end of its headers;
- ``connections.body_timeout``: from the end of the headers to the end of the body;
- ``connections.idle_timeout``: silence between requests (Twisted's own idle timer);
- ``connections.max``: past it, a new connection is answered ``503`` and closed at once,
  while the open ones carry on.

A connection that misses a deadline is closed; the metrics count each kind.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web import http, server

from synapse_base_cs_url.portal.config.serving import Connections
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.reactor import DelayedCall, PortalReactor
from synapse_base_cs_url.portal.web.request import PortalRequest

if TYPE_CHECKING:
    from twisted.web.resource import Resource

HEADER = "header"
BODY = "body"

_BUSY_BODY = json.dumps(
    {"errcode": "M_UNAVAILABLE", "error": "Too many connections to this portal; try again"}
).encode()
#: What a connection past ``connections.max`` gets before it is closed.
BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
    + str(len(_BUSY_BODY)).encode()
    + b"\r\n\r\n"
    + _BUSY_BODY
)


class PortalChannel(http.HTTPChannel):
    """An HTTP connection with header and body deadlines, known to its site while open."""

    site: PortalSite
    _deadline: DelayedCall | None = None
    _awaiting_request_line = True

    def connectionMade(self) -> None:
        base: Any = super()
        base.connectionMade()
        self.site.opened(self)

    def dataReceived(self, data: bytes) -> None:
        if self._deadline is None and not self.busy:
            self._start(HEADER, self.site.limits.header_timeout)
        base: Any = super()
        base.dataReceived(data)

    def allHeadersReceived(self) -> None:
        self._stop()
        base: Any = super()
        base.allHeadersReceived()
        # A body streamed to a sink (the gateway's uploads) takes as long as it takes (the
        # idle timeout still cuts a silent client); any other body has body_timeout.
        receiving = self._receiving()
        if receiving is None or receiving.body_sink is None:
            self._start(BODY, self.site.limits.body_timeout)

    def lineReceived(self, line: bytes) -> None:
        first = self._awaiting_request_line and bool(line)
        base: Any = super()
        base.lineReceived(line)
        if first:
            self._awaiting_request_line = False
            # Twisted has just made the request for this line: tell it its method and
            # target now, so that it can decide where its body goes once the headers are in.
            parts = line.split(b" ")
            receiving = self._receiving()
            if len(parts) == 3 and receiving is not None:
                receiving.line_received(parts[0], parts[1])

    def _receiving(self) -> PortalRequest | None:
        """The request whose headers or body are arriving (the newest on the connection)."""
        requests: list[object] = self.requests
        newest = requests[-1] if requests else None
        return newest if isinstance(newest, PortalRequest) else None

    def allContentReceived(self) -> None:
        self._stop()
        self._awaiting_request_line = True
        base: Any = super()
        base.allContentReceived()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop()
        self.site.closed(self)
        base: Any = super()
        base.connectionLost(reason)

    @property
    def busy(self) -> bool:
        """Whether a request is on its way on this connection: being received (its headers
        or body are arriving) or being answered."""
        handling: bool = self._handlingRequest
        return handling or self._deadline is not None or bool(self.requests)

    def close_when_idle(self) -> None:
        """For draining: close now if no request is on its way; otherwise once its answer
        is written (the connection is no longer kept alive)."""
        self.persistent = False
        transport: Any = self.transport
        if not self.busy and transport is not None:
            transport.loseConnection()

    def _start(self, kind: str, seconds: float) -> None:
        self._stop()
        call_later: Any = self.callLater  # the site's reactor's (set by HTTPFactory)
        self._deadline = call_later(seconds, self._missed, kind)

    def _stop(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _missed(self, kind: str) -> None:
        self._deadline = None
        self.site.metrics.connection_timeout(kind)
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()


class _Busy(Protocol):
    """Answers ``503`` and closes: a connection past ``connections.max``."""

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.write(BUSY_ANSWER)
        transport.loseConnection()


class PortalSite(server.Site):
    """A Site that tracks its connections, caps them and can drain; no access log (the
    portal logs each routed login itself)."""

    protocol = PortalChannel  # type: ignore[assignment]  # plain HTTP/1.1, no HTTP/2 upgrade

    def __init__(
        self,
        resource: Resource,
        limits: Connections,
        metrics: PortalMetrics,
        reactor: PortalReactor,
    ) -> None:
        base: Any = super()
        base.__init__(resource, timeout=limits.idle_timeout, reactor=reactor)
        self.limits = limits
        self.metrics = metrics
        self.channels: set[PortalChannel] = set()
        self.draining = False

    def buildProtocol(self, addr: Any) -> Any:
        if len(self.channels) >= self.limits.max:
            self.metrics.connection_refused()
            return _Busy()
        base: Any = super()
        return base.buildProtocol(addr)

    def opened(self, channel: PortalChannel) -> None:
        self.channels.add(channel)
        self.metrics.connections_open(len(self.channels))

    def closed(self, channel: PortalChannel) -> None:
        self.channels.discard(channel)
        self.metrics.connections_open(len(self.channels))

    def drain(self) -> None:
        """Close idle connections now; busy ones close after their answer."""
        self.draining = True
        for channel in list(self.channels):
            channel.close_when_idle()

    def log(self, request: object) -> None:
        pass
