"""String values by key for a time, where the portal keeps its state: this process's
``ExpiringMap`` (``state.backend: memory``), or the shared state under a key prefix (Redis,
seen by every portal process). Written once for every such record: the directory's answers,
registrations placed, password resets' client secrets, SSO login tokens and the gateway's
token map."""

from __future__ import annotations

import math

from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.shared import SharedState


def whole_seconds(ttl: float) -> int:
    """A TTL as the shared state takes it (Redis ``EX``: whole seconds, at least one)."""
    return max(1, math.ceil(ttl))


class Store:
    def __init__(
        self, prefix: str, memory: ExpiringMap[str, str], shared: SharedState | None
    ) -> None:
        """``memory`` is used when ``shared`` is ``None``; ``prefix`` names the records in
        the shared state (``state/keys.py``)."""
        self._prefix = prefix
        self._memory = memory
        self._shared = shared

    def at_hand(self, key: str) -> str | None:
        """The value this process has without waiting (``None`` with the shared state)."""
        return None if self._shared is not None else self._memory.get(key)

    async def get(self, key: str) -> str | None:
        if self._shared is not None:
            return await self._shared.get(self._prefix + key)
        return self._memory.get(key)

    async def put(self, key: str, value: str, ttl: float) -> None:
        if self._shared is not None:
            await self._shared.put(self._prefix + key, value, whole_seconds(ttl))
        else:
            self._memory.put(key, value, ttl)

    async def put_new(self, key: str, value: str, ttl: float) -> bool:
        """Set ``key`` unless it is set; whether this call set it."""
        if self._shared is not None:
            return await self._shared.put_new(self._prefix + key, value, whole_seconds(ttl))
        return self._memory.put_new(key, value, ttl)

    async def get_extending(self, key: str, ttl: float) -> str | None:
        """The value, its life extended to ``ttl`` (in memory, a sliding map extends each
        entry by the TTL it was put with)."""
        if self._shared is not None:
            return await self._shared.get_extending(self._prefix + key, whole_seconds(ttl))
        return self._memory.get(key)

    async def take(self, key: str) -> str | None:
        """The value, forgotten in the same step (one taker gets it)."""
        if self._shared is not None:
            return await self._shared.take(self._prefix + key)
        return self._memory.pop(key)

    async def delete(self, key: str) -> None:
        if self._shared is not None:
            await self._shared.delete(self._prefix + key)
        else:
            self._memory.discard(key)

    def __len__(self) -> int:
        """Entries in this process's map (the memory backend)."""
        return len(self._memory)

    def __contains__(self, key: str) -> bool:
        """Whether this process's map holds ``key`` (the memory backend; for tests)."""
        return key in self._memory

    @property
    def evicted(self) -> int:
        """Entries this process's map dropped to make room before they expired."""
        return self._memory.evicted
