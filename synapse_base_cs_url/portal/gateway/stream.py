"""Bodies streamed through the gateway, with backpressure both ways.

- :class:`UploadStream`: the client's request body, passed to the homeserver as it arrives
  (an ``IBodyProducer`` for the Agent). When the homeserver reads slower than the client
  sends, the Agent pauses it and it pauses reading from the client; before the homeserver
  connection is ready it holds at most :data:`HOLD` bytes, then pauses the client too.
- :class:`Relay`: the homeserver's answer body, written to the client as it arrives; the
  client connection is the Agent response's consumer, so a slow client pauses reading from
  the homeserver instead of filling the portal's memory.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.upstream.client import BodyRefused

if TYPE_CHECKING:
    from synapse_base_cs_url.portal.web.request import PortalRequest

#: Bytes of a request body held while the homeserver is not yet reading it.
HOLD = 256 * 1024


class UploadTooLarge(BodyRefused):
    """The body passed ``gateway.max_upload_size``."""


@implementer(IBodyProducer)
class UploadStream:
    """The request body of one gateway request, fed by the portal's request as it arrives."""

    def __init__(self, client_transport: Any, length: int | None, limit: int) -> None:
        self.length: object = length if length is not None else UNKNOWN_LENGTH
        self._client = client_transport
        self._limit = limit
        self._held: collections.deque[bytes] = collections.deque()
        self._held_bytes = 0
        self._received = 0
        self._consumer: Any = None
        self._finished: defer.Deferred[None] | None = None
        self._paused_by_upstream = False
        self._client_paused = False
        self.complete = False
        self.discarding = False
        self.too_large = length is not None and length > limit

    # -- fed by the portal's request ------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > self._limit:
            self.too_large = True
        if self.discarding or self.too_large:
            self._abandon()
            return
        if self._consumer is not None and not self._paused_by_upstream:
            self._consumer.write(data)
            return
        self._held.append(data)
        self._held_bytes += len(data)
        if self._held_bytes >= HOLD:
            self._pause_client()

    def finish(self) -> None:
        """The whole body has arrived."""
        self.complete = True
        self._resume_client()
        self._finish_if_done()

    def discard(self) -> None:
        """Nobody will read this body (the request failed before reaching a homeserver):
        drop what is held and what still comes, and let the client finish sending."""
        self.discarding = True
        self._finished = None  # IBodyProducer: after stopProducing the Deferred never fires
        self._drop_held()

    def _abandon(self) -> None:
        self._drop_held()
        if self._finished is not None:
            finished, self._finished = self._finished, None
            finished.errback(UploadTooLarge() if self.too_large else defer.CancelledError())

    # -- IBodyProducer (driven by the Agent) -------------------------------------------------

    def startProducing(self, consumer: Any) -> defer.Deferred[None]:
        if self.too_large:
            return defer.fail(UploadTooLarge())
        if self.discarding:
            return defer.fail(defer.CancelledError())
        self._consumer = consumer
        finished = self._finished = defer.Deferred()
        self._flush()
        self._finish_if_done()
        return finished

    def pauseProducing(self) -> None:
        self._paused_by_upstream = True
        self._pause_client()

    def resumeProducing(self) -> None:
        self._paused_by_upstream = False
        self._flush()
        self._finish_if_done()
        if self._held_bytes < HOLD:
            self._resume_client()

    def stopProducing(self) -> None:
        self.discard()

    def _finish_if_done(self) -> None:
        """Tell the Agent the body is sent, once all of it has arrived and been written."""
        if self.complete and not self._held and self._finished is not None:
            finished, self._finished = self._finished, None
            finished.callback(None)

    def _drop_held(self) -> None:
        self._held.clear()
        self._held_bytes = 0
        self._resume_client()

    def _flush(self) -> None:
        while self._held and not self._paused_by_upstream and self._consumer is not None:
            data = self._held.popleft()
            self._held_bytes -= len(data)
            self._consumer.write(data)

    def _pause_client(self) -> None:
        if not self._client_paused and not self.complete and self._client is not None:
            self._client_paused = True
            self._client.pauseProducing()

    def _resume_client(self) -> None:
        if self._client_paused and self._client is not None:
            self._client_paused = False
            self._client.resumeProducing()


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
