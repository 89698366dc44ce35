"""Which homeserver issued each SSO login token (footnote [1] of MSC1730).

The portal sees every login token on its way from the homeserver to the client (the SSO
``redirectUrl`` points at the portal's callback), remembers ``token -> homeserver`` here, and
routes the client's ``m.login.token`` login to that homeserver.

Kept in a :class:`~synapse_base_cs_url.portal.state.store.Store`: in one portal process's
bounded map (``state.backend: memory``: when full, the oldest entry goes, and its login then
goes to the default SSO homeserver), or in the shared state (``state.backend: redis``:
``SET key hs EX ttl NX`` to record, ``GETDEL key`` to take), so a callback through one portal
process and the token login through another meet, and a token taken at two processes at
once is honoured once.

Tokens are never kept as such: entries are keyed by ``token_key(token)`` (SHA-256), so
neither a memory dump nor a shared store reveals a usable token.
"""

from __future__ import annotations

from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.keys import SSO_PREFIX, token_key
from synapse_base_cs_url.portal.state.shared import SharedState
from synapse_base_cs_url.portal.state.store import Store


class SsoTokenStore:
    """``token -> homeserver name``, each entry forgotten after ``ttl`` or once taken.
    Raises the state's ``StateUnavailable`` when the shared state cannot answer."""

    def __init__(self, store: Store, ttl: float) -> None:
        self.store = store
        self._ttl = ttl

    @classmethod
    def build(
        cls, ttl: float, max_entries: int, clock: Clock, shared: SharedState | None = None
    ) -> SsoTokenStore:
        """In this process (at most ``max_entries``), or in ``shared``."""
        memory: ExpiringMap[str, str] = ExpiringMap(
            clock, max_entries=max_entries, ttl=ttl, sliding=False
        )
        return cls(Store(SSO_PREFIX, memory, shared), ttl)

    def __len__(self) -> int:
        return len(self.store)

    @property
    def evicted(self) -> int:
        """Entries dropped to make room before they expired (the memory backend)."""
        return self.store.evicted

    async def remember(self, token: str, homeserver: str) -> bool:
        """Record who issued ``token``. A token already recorded keeps its first homeserver
        (a token is issued once; a second callback for it can only be a replay). Returns
        whether this call recorded it."""
        return await self.store.put_new(token_key(token), homeserver, self._ttl)

    async def take(self, token: str) -> str | None:
        """The homeserver that issued ``token``, forgetting it; ``None`` if unknown or
        expired."""
        return await self.store.take(token_key(token))
