"""Token buckets per client address, and a bounded number of lookups at once."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock

from synapse_base_cs_url.portal.state.rate_limit import (
    ClientBuckets,
    RateLimiter,
    Slots,
    client_key,
)


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    limits = RateLimiter(2.0, 3, clock, max_keys=10)
    assert [limits.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limits.take("a") == 0.5
    assert limits.take("b") == 0.0  # another client has its own bucket
    clock.advance(0.5)
    assert limits.take("a") == 0.0


def test_only_max_keys_are_kept() -> None:
    clock = Clock()
    limits = RateLimiter(1.0, 1, clock, max_keys=2)
    for key in ("a", "b", "c"):
        limits.take(key)
    assert len(limits) == 2
    assert limits.take("a") == 0.0  # forgotten: starts afresh


def test_a_reload_keeps_what_each_client_had_left() -> None:
    clock = Clock()
    kept = ClientBuckets()  # the process keeps them; each reload's limiter uses them
    old = RateLimiter(1.0, 1, clock, max_keys=10, buckets=kept)
    old.take("a")
    new = RateLimiter(1.0, 1, clock, max_keys=10, buckets=kept)
    assert new.take("a") == 1.0


def test_slots_queue_then_refuse() -> None:
    slots = Slots(1)
    gates = [defer.Deferred() for _ in range(3)]
    started: list[int] = []

    def work(i: int):
        async def run() -> int:
            started.append(i)
            await gates[i]
            return i

        return run

    first = defer.ensureDeferred(slots.run(work(0)))
    second = defer.ensureDeferred(slots.run(work(1)))
    assert started == [0] and slots.running == 1
    assert slots.full  # one running, one waiting
    gates[0].callback(None)
    assert first.result == 0 and started == [0, 1]
    assert not slots.full
    gates[1].callback(None)
    assert second.result == 1 and slots.running == 0


def test_ipv6_clients_are_counted_by_their_network() -> None:
    assert client_key("2001:db8:1:2::1", 64) == client_key("2001:db8:1:2:ffff:1:2:3", 64)
    assert client_key("2001:db8:1:2::1", 64) != client_key("2001:db8:1:3::1", 64)
    assert client_key("2001:db8:1:2::1", 128) == "2001:db8:1:2::1"
    assert client_key("192.0.2.1", 64) == "192.0.2.1"
    assert client_key("::ffff:192.0.2.1", 64) == "192.0.2.1"
    assert client_key("unknown", 64) == "unknown"


def test_a_limiter_counts_a_rotating_ipv6_client_once() -> None:
    clock = Clock()
    limiter = RateLimiter(1, 2, clock, max_keys=10)
    assert [limiter.take(f"2001:db8::{i}") for i in range(1, 3)] == [0, 0]
    assert limiter.take("2001:db8::99") > 0
    assert limiter.take("2001:db8:0:1::1") == 0
