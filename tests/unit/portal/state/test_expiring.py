"""The one expiring, size-capped map: expiry (fixed or sliding, per-entry TTLs), eviction of
the least recently used, put-if-new, take."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from synapse_base_cs_url.portal.state.expiring import ExpiringMap


def fixed(clock: Clock, size: int = 3, ttl: float = 10) -> ExpiringMap[str, str]:
    return ExpiringMap(clock, max_entries=size, ttl=ttl, sliding=False)


def test_fixed_expiry_counts_from_the_put() -> None:
    clock = Clock()
    m = fixed(clock)
    m.put("a", "1")
    clock.advance(9)
    assert m.get("a") == "1"  # a hit does not extend it
    clock.advance(1)
    assert m.get("a") is None
    assert "a" not in m


def test_sliding_expiry_restarts_with_every_hit() -> None:
    clock = Clock()
    m: ExpiringMap[str, str] = ExpiringMap(clock, max_entries=3, ttl=10, sliding=True)
    m.put("a", "1")
    for _ in range(5):
        clock.advance(9)
        assert m.get("a") == "1"
    clock.advance(10)
    assert m.get("a") is None


def test_a_ttl_per_entry() -> None:
    clock = Clock()
    m: ExpiringMap[str, str] = ExpiringMap(clock, max_entries=3, ttl=10, sliding=True)
    m.put("short", "1", ttl=2)
    m.put("long", "2", ttl=100)
    clock.advance(3)
    assert m.get("short") is None
    clock.advance(90)
    assert m.get("long") == "2"
    clock.advance(99)  # slid by its own TTL
    assert m.get("long") == "2"


def test_the_least_recently_used_goes_first_when_full() -> None:
    clock = Clock()
    m = fixed(clock, size=3)
    for key in "abc":
        m.put(key, key)
    assert m.get("a") == "a"  # now the most recently used
    m.put("d", "d")
    assert [k for k in "abcd" if k in m] == ["a", "c", "d"]
    assert m.evicted == 1
    assert len(m) == 3


def test_expired_entries_are_not_counted_as_evicted_and_are_dropped_unasked() -> None:
    clock = Clock()
    m = fixed(clock, size=1000)
    for i in range(100):
        m.put(f"k{i}", "v")
    clock.advance(11)
    m.put("fresh", "v")
    assert len(m) == 1
    assert m.evicted == 0


def test_put_new_and_pop() -> None:
    clock = Clock()
    m = fixed(clock)
    assert m.put_new("a", "first") is True
    assert m.put_new("a", "second") is False
    assert m.get("a") == "first"
    assert m.pop("a") == "first"
    assert m.pop("a") is None
    m.put("b", "old")
    clock.advance(10)
    assert m.put_new("b", "new") is True  # an expired entry is no entry
    assert m.get("b") == "new"
    m.put("c", "x")
    clock.advance(10)
    assert m.pop("c") is None  # an expired entry is never returned
    m.put("d", "x")
    m.discard("d")
    m.discard("never")
    assert "d" not in m


@pytest.mark.parametrize(("size", "ttl"), [(0, 10), (10, 0), (-1, 10), (10, -1)])
def test_nonsense_bounds_are_refused(size: int, ttl: float) -> None:
    with pytest.raises(ValueError):
        ExpiringMap(Clock(), max_entries=size, ttl=ttl, sliding=False)
