"""Bodies of the portal's exchanges with homeservers: a request body already in memory,
written in one go, and answers read whole with a size limit (as Synapse's
``read_body_with_max_size``) or discarded by closing their connection."""

from __future__ import annotations

from typing import Any
from typing import Protocol as TypingProtocol

from twisted.internet import defer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer


class AgentResponse(TypingProtocol):
    """What the portal reads of the Agent's ``IResponse`` (a zope interface, which mypy
    cannot check calls against)."""

    code: int
    headers: Headers
    length: int | object

    def deliverBody(self, protocol: Protocol) -> None: ...


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
