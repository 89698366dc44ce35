"""Upload bodies through the gateway: held only up to a bound before the homeserver reads,
then passed on as they come; each side's pace pauses the other."""

from __future__ import annotations

import pytest
from twisted.internet import defer, task

from synapse_base_cs_url.portal.config.gateway import UPLOAD_HOLD as HOLD
from synapse_base_cs_url.portal.gateway.relay import Relay
from synapse_base_cs_url.portal.gateway.upload_stream import UploadStream, UploadTooLarge


class Transport:
    """The client connection: paused or reading."""

    def __init__(self) -> None:
        self.paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False


class Consumer:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def test_held_up_to_a_bound_then_the_client_waits() -> None:
    client = Transport()
    stream = UploadStream(client, 4 * HOLD, limit=10 * HOLD)
    stream.feed(b"a" * (HOLD - 1))
    assert not client.paused
    stream.feed(b"b")
    assert client.paused  # nobody reads yet: stop reading from the client
    consumer = Consumer()
    finished = stream.startProducing(consumer)
    assert consumer.data == b"a" * (HOLD - 1) + b"b"
    stream.resumeProducing()
    assert not client.paused
    stream.feed(b"c" * 10)
    assert consumer.data.endswith(b"c" * 10)
    assert not finished.called
    stream.finish()
    assert finished.called


def test_a_slow_homeserver_pauses_the_client() -> None:
    client, consumer = Transport(), Consumer()
    stream = UploadStream(client, None, limit=10 * HOLD)
    finished = stream.startProducing(consumer)
    stream.pauseProducing()  # the homeserver's connection is full
    assert client.paused
    stream.feed(b"x" * 100)
    assert consumer.data == b""  # held, not written to a full connection
    stream.resumeProducing()
    assert consumer.data == b"x" * 100
    assert not client.paused
    stream.finish()
    assert finished.called


def test_too_large_is_refused_and_nothing_is_kept() -> None:
    client, consumer = Transport(), Consumer()
    stream = UploadStream(client, None, limit=100)
    finished = stream.startProducing(consumer)
    failures: list[defer.Failure] = []
    finished.addErrback(failures.append)
    stream.feed(b"x" * 60)
    stream.feed(b"x" * 60)
    assert stream.too_large
    assert failures and failures[0].check(UploadTooLarge)
    stream.feed(b"x" * 60)
    assert consumer.data == b"x" * 60
    assert not client.paused
    assert UploadStream(client, 101, limit=100).too_large  # known from Content-Length


def test_a_discarded_body_lets_the_client_finish() -> None:
    client = Transport()
    stream = UploadStream(client, None, limit=10 * HOLD)
    stream.feed(b"y" * HOLD)
    assert client.paused
    stream.discard()
    assert not client.paused
    stream.feed(b"z" * HOLD)  # dropped, not held
    assert not client.paused


@pytest.mark.parametrize("length", [0, 5])
def test_a_body_that_ends_before_the_homeserver_reads(length: int) -> None:
    stream = UploadStream(Transport(), length, limit=100)
    stream.feed(b"q" * length)
    stream.finish()
    consumer = Consumer()
    finished = stream.startProducing(consumer)
    assert finished.called
    assert consumer.data == b"q" * length


def test_an_upload_known_too_large_is_never_sent() -> None:
    stream = UploadStream(Transport(), 101, limit=100)
    failures: list[defer.Failure] = []
    stream.startProducing(Consumer()).addErrback(failures.append)
    assert failures and failures[0].check(UploadTooLarge)


def test_a_stopped_upload_never_fires() -> None:
    stream = UploadStream(Transport(), None, limit=100)
    finished = stream.startProducing(Consumer())
    stream.stopProducing()  # the Agent gave up on the request
    stream.feed(b"x")
    stream.finish()
    assert not finished.called


class Answer(Transport):
    """The homeserver connection an answer body is read from."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped = False

    def stopProducing(self) -> None:
        self.stopped = True


class ClientRequest:
    finished = False

    def __init__(self) -> None:
        self.written = b""
        self.producer: object = None

    def stream_from(self, producer: object) -> None:
        self.producer = producer

    def write_part(self, data: bytes) -> None:
        self.written += data


def test_a_slow_client_holds_the_homeserver_back_without_timing_it_out() -> None:
    clock, request, answer = task.Clock(), ClientRequest(), Answer()
    relay = Relay(request, clock, idle_timeout=30)  # type: ignore[arg-type]
    relay.makeConnection(answer)
    assert request.producer is relay
    relay.dataReceived(b"part one")
    for _ in range(5):  # the client reads, slowly: every 25 s
        relay.pauseProducing()  # the client's connection is full
        assert answer.paused
        relay.dataReceived(b".")  # read before the pause: passed on, and no reprieve
        clock.advance(25)
        relay.resumeProducing()
        assert not answer.paused
    assert not relay.done.called and not answer.stopped
    clock.advance(29)
    relay.dataReceived(b", part two")
    assert request.written == b"part one....., part two"
    clock.advance(31)  # now the homeserver is silent
    assert answer.stopped
    failures: list[defer.Failure] = []
    relay.done.addErrback(failures.append)
    assert failures and failures[0].check(defer.TimeoutError)
    assert "homeserver stopped sending" in str(failures[0].value)


def test_a_client_that_stops_reading_is_let_go() -> None:
    clock, request, answer = task.Clock(), ClientRequest(), Answer()
    relay = Relay(request, clock, idle_timeout=30)  # type: ignore[arg-type]
    relay.makeConnection(answer)
    relay.dataReceived(b"x" * 65536)
    relay.pauseProducing()  # and never resumed
    relay.dataReceived(b"y")  # already read from the homeserver: no new lease of life
    clock.advance(29)
    assert not answer.stopped
    clock.advance(2)
    assert answer.stopped  # the homeserver connection is released
    failures: list[defer.Failure] = []
    relay.done.addErrback(failures.append)
    assert failures and "client stopped reading" in str(failures[0].value)
