"""Which homeserver each access token (and each refresh token) belongs to.

Keys are SHA-256 hashes of the tokens, never the tokens, under their kind's prefix
(``state/keys.py``). Entries are forgotten after ``gateway.token_ttl`` without use (every
lookup extends it), or when the token logs out. Kept in a
:class:`~synapse_base_cs_url.portal.state.store.Store`: one process's bounded map (the least
recently used entry goes first when full), or the shared state (Redis), so that a token
learnt by one portal process is known to all of them.

The map is an optimisation, not a dependency: a token it does not name is resolved by asking
the homeservers. So while the shared state cannot be read or written, this process keeps what
it learns in its own bounded map instead (``fallback``), and a request is never refused only
because Redis is down; once Redis answers again, the shared map is used again (a token learnt
meanwhile by another process is resolved once more, at worst).
"""

from __future__ import annotations

import logging

from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.shared import SharedState, StateUnavailable
from synapse_base_cs_url.portal.state.store import Store

logger = logging.getLogger(__name__)


class TokenMap:
    def __init__(self, store: Store, fallback: ExpiringMap[str, str] | None = None) -> None:
        """``fallback``: where this process keeps tokens while ``store`` (the shared state)
        is unavailable; none for a store in this process's memory (always available)."""
        self.store = store
        self.fallback = fallback

    @classmethod
    def build(cls, max_entries: int, clock: Clock, shared: SharedState | None = None) -> TokenMap:
        """In this process (at most ``max_entries``; each entry slides by the TTL it was
        remembered with), or in ``shared``. Keys carry their kind's prefix already."""
        memory: ExpiringMap[str, str] = ExpiringMap(
            clock, max_entries=max_entries, ttl=1.0, sliding=True
        )
        return cls(Store("", memory, shared), fallback=memory if shared is not None else None)

    def __len__(self) -> int:
        return len(self.store)

    async def remember(self, key: str, homeserver: str, ttl: float) -> None:
        try:
            await self.store.put(key, homeserver, ttl)
        except StateUnavailable as e:
            self._unavailable("remember", e).put(key, homeserver, ttl)

    async def lookup(self, key: str, ttl: float) -> str | None:
        """The homeserver for ``key``, and its lifetime extended to ``ttl`` seconds."""
        try:
            return await self.store.get_extending(key, ttl)
        except StateUnavailable as e:
            return self._unavailable("lookup", e).get(key)

    async def forget(self, key: str) -> None:
        if self.fallback is not None:
            self.fallback.discard(key)
        try:
            await self.store.delete(key)
        except StateUnavailable as e:
            # Its homeserver refuses the token from now on: a stale entry only sends that
            # refusal's request to the right place until it expires.
            self._unavailable("forget", e)

    def _unavailable(self, step: str, error: StateUnavailable) -> ExpiringMap[str, str]:
        """The map standing in for the shared state (logged), or ``error`` re-raised where
        there is none (a memory store never raises)."""
        if self.fallback is None:
            raise error
        logger.debug("token map: %s in this process only: %s", step, error)
        return self.fallback
