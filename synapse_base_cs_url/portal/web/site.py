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

A request head the portal cannot read is answered before the connection closes, as nginx
answers it: ``414`` for a request line over ``MAX_LINE`` bytes, ``431`` for a header line
over ``MAX_LINE``, a head over ``MAX_HEAD_SIZE`` or more than ``MAX_HEADERS`` headers, ``400``
for a malformed one; each with a Matrix JSON body and ``Connection: close``. (Twisted closes
silently on the first, and answers a bare ``400`` to the others: a client, or a user
following a long SSO link, could not tell the portal's refusal from a crash.)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web import http, server

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.serving import Connections
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.reactor import DelayedCall, PortalReactor
from synapse_base_cs_url.portal.web.request import PortalRequest

if TYPE_CHECKING:
    from twisted.web.resource import Resource

HEADER = "header"
BODY = "body"

#: Twisted's own limits on a request's head, kept, but named here so that the answers can
#: say them. (nginx's default, ``large_client_header_buffers 4 8k``, allows lines of 8 KiB
#: at most but up to 32 KiB in all: behind it, a head of 16 to 32 KiB reaches the portal and
#: gets the portal's 431.)
MAX_LINE = 16384
"""The request line, and each header line (``LineReceiver.MAX_LENGTH``)."""
MAX_HEAD_SIZE = 16384
"""The request line and all header lines together (``HTTPChannel.totalHeadersSize``)."""
MAX_HEADERS = 500
"""Headers in one request (``HTTPChannel.maxHeaders``)."""
#: How long a refused client may go on sending (its input is read and dropped) after the
#: answer: closing a socket whose input is unread resets the connection, and the reset can
#: destroy the answer before the client has read it (nginx's ``lingering_close``).
LINGER_SECONDS = 5.0

#: The refusals of a head the portal cannot read are open to any origin, so that a web
#: client can read why.
_ANY_ORIGIN = "Access-Control-Allow-Origin: *"


def _refusal(status: int, reason: str, errcode: str, error: str, header: str) -> bytes:
    """A whole answer, written before anything of the request was routed (Matrix JSON as
    every other error of the portal's, with one more ``header``), and the end of the
    connection."""
    body = json.dumps({"errcode": errcode, "error": error}).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"{header}\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


#: What a connection past ``connections.max`` gets before it is closed.
BUSY_ANSWER = _refusal(
    503,
    "Service Unavailable",
    errors.UNAVAILABLE,
    "Too many connections to this portal; try again",
    "Retry-After: 1",
)


# M_TOO_LARGE is the spec's errcode for "the request or entity was too large": a client can
# show it as such, where M_UNKNOWN says nothing.
URI_TOO_LONG = (
    414,
    _refusal(
        414,
        "URI Too Long",
        errors.TOO_LARGE,
        f"The request line is longer than {MAX_LINE} bytes",
        _ANY_ORIGIN,
    ),
)
HEADERS_TOO_LARGE = (
    431,
    _refusal(
        431,
        "Request Header Fields Too Large",
        errors.TOO_LARGE,
        f"The request's headers are too large: at most {MAX_HEADERS} headers, each line at "
        f"most {MAX_LINE} bytes and all of them with the request line at most "
        f"{MAX_HEAD_SIZE} bytes",
        _ANY_ORIGIN,
    ),
)
BAD_REQUEST = (
    400,
    _refusal(400, "Bad Request", errors.UNKNOWN, "Malformed HTTP request", _ANY_ORIGIN),
)


class PortalChannel(http.HTTPChannel):
    """An HTTP connection with header and body deadlines, known to its site while open."""

    site: PortalSite
    MAX_LENGTH = MAX_LINE
    totalHeadersSize = MAX_HEAD_SIZE
    maxHeaders = MAX_HEADERS
    _deadline: DelayedCall | None = None
    _linger: DelayedCall | None = None
    _awaiting_request_line = True
    _refused = False

    def connectionMade(self) -> None:
        base: Any = super()
        base.connectionMade()
        self.site.opened(self)

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return  # the rest of a refused request, read only so the answer is not reset
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
        if first and not self._refused:
            self._awaiting_request_line = False
            # Twisted has just made the request for this line: tell it its method and
            # target now, so that it can decide where its body goes once the headers are in.
            parts = line.split(b" ")
            receiving = self._receiving()
            if len(parts) == 3 and receiving is not None:
                receiving.line_received(parts[0], parts[1])

    def lineLengthExceeded(self, line: bytes) -> None:
        """A line over ``MAX_LINE``: the request line (``414``) or a header line (``431``).
        Twisted would close without a word."""
        self._refuse(*(URI_TOO_LONG if self._awaiting_request_line else HEADERS_TOO_LARGE))

    def _respondToBadRequestAndDisconnect(self) -> None:
        """Twisted's answer to every head it cannot take (a bare ``400``, no body), told
        apart by the counters it has just pushed over their limits."""
        too_large = (
            self._receivedHeaderSize > self.totalHeadersSize
            or self._receivedHeaderCount > self.maxHeaders
        )
        self._refuse(*(HEADERS_TOO_LARGE if too_large else BAD_REQUEST))

    def _refuse(self, status: int, answer: bytes) -> None:
        """Answer (unless an answer has begun: then only close), stop reading requests, and
        close: the writing half now, the rest once the client has closed its own or
        ``LINGER_SECONDS`` have passed."""
        if self._refused:
            return
        self._refused = True
        self._stop()
        self.persistent = False
        base: Any = super()
        base.clearLineBuffer()  # nothing more of this connection is parsed
        self.site.metrics.unreadable_request(status)
        transport: Any = self.transport
        if any(getattr(r, "startedWriting", False) for r in self.requests):
            transport.abortConnection()  # a body arrived malformed after its answer began
            return
        transport.write(answer)
        half_close = getattr(transport, "loseWriteConnection", None)
        if half_close is None:
            base.loseConnection()
            return
        half_close()
        call_later: Any = self.callLater
        self._linger = call_later(LINGER_SECONDS, transport.abortConnection)

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
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
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
