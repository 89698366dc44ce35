"""Which homeserver each access token (and each registration in progress) belongs to.

Keys are SHA-256 hashes of the tokens, never the tokens (``state/keys.py`` names every key
prefix). Entries are forgotten after ``gateway.token_ttl`` without use (every lookup extends
it), or when the token logs out. In memory for one process; in the shared state (Redis) for
several, so that a token learnt by one portal process is known to all of them.
"""

from __future__ import annotations

from typing import Protocol

from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.shared import SharedState
from synapse_base_cs_url.portal.state.store import whole_seconds


class TokenMap(Protocol):
    async def remember(self, key: str, homeserver: str, ttl: float) -> None: ...

    async def lookup(self, key: str, ttl: float) -> str | None:
        """The homeserver for ``key``, and its lifetime extended to ``ttl`` seconds."""
        ...

    async def forget(self, key: str) -> None: ...


class InMemoryTokenMap:
    """A bounded map in one process: least recently used entries go first when full. Each
    entry slides by the TTL it was remembered with (the callers use one TTL per key
    prefix)."""

    def __init__(self, max_entries: int, clock: Clock) -> None:
        self._entries: ExpiringMap[str, str] = ExpiringMap(
            clock, max_entries=max_entries, ttl=1.0, sliding=True
        )

    def __len__(self) -> int:
        return len(self._entries)

    async def remember(self, key: str, homeserver: str, ttl: float) -> None:
        self._entries.put(key, homeserver, ttl)

    async def lookup(self, key: str, ttl: float) -> str | None:
        return self._entries.get(key)

    async def forget(self, key: str) -> None:
        self._entries.discard(key)


class SharedTokenMap:
    """The map in the shared state (``state.backend: redis``)."""

    def __init__(self, state: SharedState) -> None:
        self._state = state

    async def remember(self, key: str, homeserver: str, ttl: float) -> None:
        await self._state.put(key, homeserver, whole_seconds(ttl))

    async def lookup(self, key: str, ttl: float) -> str | None:
        return await self._state.get_extending(key, whole_seconds(ttl))

    async def forget(self, key: str) -> None:
        await self._state.delete(key)
