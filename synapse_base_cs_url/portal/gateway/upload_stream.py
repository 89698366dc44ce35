"""The client's request body, passed to the homeserver as it arrives (an ``IBodyProducer``
for the Agent), with backpressure: when the homeserver reads slower than the client sends,
the Agent pauses it and it pauses reading from the client; before the homeserver connection
is ready it holds at most :data:`~synapse_base_cs_url.portal.config.gateway.UPLOAD_HOLD`
bytes, then pauses the client too.
"""

from __future__ import annotations

import collections
from typing import Any

from twisted.internet import defer
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from synapse_base_cs_url.portal.config.gateway import UPLOAD_HOLD as HOLD
from synapse_base_cs_url.portal.upstream.client import BodyRefused


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
