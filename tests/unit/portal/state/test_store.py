"""One store for records kept by key for a time: this process's map, or the shared state
under a prefix (with the TTL in whole seconds, as Redis takes it)."""

from __future__ import annotations

from twisted.internet.task import Clock

from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.store import Store, whole_seconds
from tests.harness.deferreds import settle
from tests.harness.shared_state import SharedDict


def test_whole_seconds() -> None:
    assert [whole_seconds(t) for t in (0.2, 1.0, 1.5, 600.0)] == [1, 1, 2, 600]


def test_in_memory() -> None:
    clock = Clock()
    store = Store("p:", ExpiringMap(clock, max_entries=10, ttl=5, sliding=False), None)
    settle(store.put("a", "hs1", 10))
    assert store.at_hand("a") == "hs1" and settle(store.get("a")) == "hs1"
    assert settle(store.put_new("a", "hs2", 10)) is False
    assert settle(store.put_new("b", "hs2", 1)) is True
    assert len(store) == 2
    clock.advance(2)
    assert settle(store.get("b")) is None and settle(store.get("a")) == "hs1"


def test_in_the_shared_state_under_its_prefix() -> None:
    shared = SharedDict()
    memory: ExpiringMap[str, str] = ExpiringMap(Clock(), max_entries=10, ttl=5, sliding=False)
    store = Store("p:", memory, shared)
    settle(store.put("a", "hs1", 0.5))
    assert shared.values == {"p:a": ("hs1", 1)}
    assert settle(store.get("a")) == "hs1"
    assert store.at_hand("a") is None  # nothing at hand: every process asks the state
    assert settle(store.put_new("a", "hs2", 10)) is False
    assert settle(store.put_new("b", "hs2", 10)) is True
    assert len(memory) == 0
