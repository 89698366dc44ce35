"""One expiring, size-capped map: every cache and short-lived record of the portal in memory
(the gateway's token map and unknown tokens, SSO login tokens, the directory's answers,
discovery documents, rate buckets).

Entries expire after their TTL (fixed from when they were put, or *sliding*: each hit starts
it again) on the reactor's clock, and the least recently used entry goes first when the map
is full, so memory is bounded by ``max_entries`` whatever clients send.
"""

from __future__ import annotations

import collections
from typing import Generic, TypeVar

from synapse_base_cs_url.portal.reactor import Clock

K = TypeVar("K")
V = TypeVar("V")


class ExpiringMap(Generic[K, V]):
    """``key -> value`` for ``ttl`` seconds each, at most ``max_entries`` of them.

    With ``sliding``, a hit extends the entry's life to its TTL again; without, an entry
    lives exactly its TTL from the ``put``. Either way a hit makes the entry the most
    recently used one (it is the last to be dropped when the map is full).
    """

    def __init__(self, clock: Clock, *, max_entries: int, ttl: float, sliding: bool) -> None:
        if max_entries <= 0 or ttl <= 0:
            raise ValueError("max_entries and ttl must be positive")
        self._clock = clock
        self._max = max_entries
        self._ttl = ttl
        self._sliding = sliding
        # key -> (expiry, ttl, value), least recently used first.
        self._entries: collections.OrderedDict[K, tuple[float, float, V]] = (
            collections.OrderedDict()
        )
        self.evicted = 0
        """Entries dropped to make room before they expired (for metrics and tests)."""

    def __len__(self) -> int:
        """Entries kept, expired ones not yet dropped included."""
        return len(self._entries)

    def __contains__(self, key: K) -> bool:
        entry = self._entries.get(key)
        return entry is not None and entry[0] > self._clock.seconds()

    def get(self, key: K) -> V | None:
        """The value (its life extended if sliding), or ``None`` if absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expiry, ttl, value = entry
        now = self._clock.seconds()
        if expiry <= now:
            del self._entries[key]
            return None
        if self._sliding:
            self._entries[key] = (now + ttl, ttl, value)
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        """Set ``key`` for ``ttl`` seconds (the map's own TTL unless given)."""
        ttl = self._ttl if ttl is None else ttl
        now = self._clock.seconds()
        self._drop_expired_front(now)
        self._entries[key] = (now + ttl, ttl, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._make_room(now)

    def put_new(self, key: K, value: V, ttl: float | None = None) -> bool:
        """Set ``key`` unless it holds an unexpired value; whether it was set."""
        if key in self:
            return False
        self.put(key, value, ttl)
        return True

    def pop(self, key: K) -> V | None:
        """Take the value out (``None`` if absent or expired)."""
        entry = self._entries.pop(key, None)
        if entry is None or entry[0] <= self._clock.seconds():
            return None
        return entry[2]

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def _drop_expired_front(self, now: float) -> None:
        """Forget the expired entries among the least recently used, without being asked
        for them: with one TTL and no hits, that is every expired entry; otherwise those
        that are least recently used are dropped first anyway when the map is full."""
        entries = self._entries
        while entries:
            key, (expiry, _, _) = next(iter(entries.items()))
            if expiry > now:
                return
            del entries[key]

    def _make_room(self, now: float) -> None:
        entries = self._entries
        while len(entries) > self._max:
            _, (expiry, _, _) = entries.popitem(last=False)
            if expiry > now:
                self.evicted += 1
