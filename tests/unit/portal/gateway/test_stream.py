"""Upload bodies through the gateway: held only up to a bound before the homeserver reads,
then passed on as they come; each side's pace pauses the other."""

from __future__ import annotations

import pytest
from twisted.internet import defer

from synapse_base_cs_url.portal.gateway.stream import HOLD, UploadStream, UploadTooLarge


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
