"""The homeserver's answer body, written to the client as it arrives: the client connection
is the Agent response's consumer, so a slow client pauses reading from the homeserver
instead of filling the portal's memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from zope.interface import implementer

from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.web.request import PortalRequest


@implementer(IPushProducer)
class Relay(Protocol):
    """Writes a homeserver's answer body to the client as it arrives; ``done`` fires when it
    has all been written (or fails when either side broke off).

    One timer, ``idle_timeout`` seconds: while the client reads, it is how long the
    homeserver may stay silent; while the client's connection is full (the homeserver held
    back), how long the client may go without reading. Either way, a stalled exchange ends."""

    def __init__(self, request: PortalRequest, clock: Clock, idle_timeout: float) -> None:
        self.request = request
        self.done: defer.Deferred[None] = defer.Deferred()
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._timer: Any = None
        self._paused = False

    def connectionMade(self) -> None:
        # The homeserver side waits whenever the client is slow to read: no buffering here.
        self.request.stream_from(self)
        self._arm()

    # -- IPushProducer for the client connection: pass its backpressure to the homeserver --

    def pauseProducing(self) -> None:
        # A homeserver held back by a slow client is not silent; the client now has
        # idle_timeout seconds to read some of what it was sent.
        self._paused = True
        self._arm(self._stalled)
        transport: Any = self.transport
        if transport is not None:
            transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        transport: Any = self.transport
        if transport is not None:
            transport.resumeProducing()
        if not self.done.called:
            self._arm()

    def stopProducing(self) -> None:
        self.abort()

    def dataReceived(self, data: bytes) -> None:
        if not self._paused:  # (data read before the pause still comes in)
            self._arm()
        self.request.write_part(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._disarm()
        if self.done.called:
            return
        if isinstance(reason.value, (ResponseDone, PotentialDataLoss)):
            self.done.callback(None)
        else:
            self.done.errback(reason)

    def abort(self) -> None:
        """Stop reading from the homeserver (the client left, or it went silent)."""
        transport: Any = self.transport
        if transport is not None:
            transport.stopProducing()

    def _arm(self, expire: Callable[[], None] | None = None) -> None:
        self._disarm()
        self._timer = self._clock.callLater(self._idle_timeout, expire or self._silent)

    def _disarm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _silent(self) -> None:
        self._timer = None
        self._give_up("the homeserver stopped sending")

    def _stalled(self) -> None:
        self._timer = None
        self._give_up("the client stopped reading")

    def _give_up(self, why: str) -> None:
        self.abort()
        if not self.done.called:
            self.done.errback(defer.TimeoutError(why))
