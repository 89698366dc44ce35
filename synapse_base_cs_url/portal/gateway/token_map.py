"""Which homeserver each access token (and each refresh token) belongs to.

Keys are SHA-256 hashes of the tokens, never the tokens, under their kind's prefix
(``state/keys.py``). Entries are forgotten after ``gateway.token_ttl`` without use (every
lookup extends it), or when the token logs out. Kept in a
:class:`~synapse_base_cs_url.portal.state.store.Store`: one process's bounded map (the least
recently used entry goes first when full), or the shared state (Redis), so that a token
learnt by one portal process is known to all of them.
"""

from __future__ import annotations

from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.shared import SharedState
from synapse_base_cs_url.portal.state.store import Store


class TokenMap:
    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    def build(cls, max_entries: int, clock: Clock, shared: SharedState | None = None) -> TokenMap:
        """In this process (at most ``max_entries``; each entry slides by the TTL it was
        remembered with), or in ``shared``. Keys carry their kind's prefix already."""
        memory: ExpiringMap[str, str] = ExpiringMap(
            clock, max_entries=max_entries, ttl=1.0, sliding=True
        )
        return cls(Store("", memory, shared))

    def __len__(self) -> int:
        return len(self.store)

    async def remember(self, key: str, homeserver: str, ttl: float) -> None:
        await self.store.put(key, homeserver, ttl)

    async def lookup(self, key: str, ttl: float) -> str | None:
        """The homeserver for ``key``, and its lifetime extended to ``ttl`` seconds."""
        return await self.store.get_extending(key, ttl)

    async def forget(self, key: str) -> None:
        await self.store.delete(key)
