"""Which homeserver issued each SSO login token (footnote [1] of MSC1730).

The portal sees every login token on its way from the homeserver to the client (the SSO
``redirectUrl`` points at the portal's callback), remembers ``token -> homeserver`` here, and
routes the client's ``m.login.token`` login to that homeserver.

:class:`SsoTokenStore` is the interface the portal uses. :class:`InMemorySsoTokenStore` lives
in one portal process (``state.backend: memory``); :class:`SharedSsoTokenStore` keeps the
entries in the shared state (``state.backend: redis``: ``SET key hs EX ttl NX`` to record,
``GETDEL key`` to take), so a callback through one portal process and the token login
through another meet, and a token taken at two processes at once is honoured once.

Tokens are never kept as such: entries are keyed by ``token_key(token)`` (SHA-256), so
neither a memory dump nor a shared store reveals a usable token.
"""

from __future__ import annotations

from typing import Protocol

from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.keys import SSO_PREFIX, token_key
from synapse_base_cs_url.portal.state.shared import SharedState
from synapse_base_cs_url.portal.state.store import whole_seconds


class SsoTokenStore(Protocol):
    """``token -> homeserver name``, each entry forgotten after a TTL or once taken."""

    async def remember(self, token: str, homeserver: str) -> bool:
        """Record who issued ``token``. A token already recorded keeps its first homeserver
        (a token is issued once; a second callback for it can only be a replay). Returns
        whether this call recorded it."""
        ...

    async def take(self, token: str) -> str | None:
        """The homeserver that issued ``token``, forgetting it; ``None`` if unknown or
        expired."""
        ...


class InMemorySsoTokenStore:
    """An :class:`SsoTokenStore` in one process: ``ttl`` seconds per entry, at most
    ``max_entries`` entries (when full, the oldest entry is dropped: its login then goes to
    the default SSO homeserver)."""

    def __init__(self, ttl: float, max_entries: int, clock: Clock) -> None:
        self._entries: ExpiringMap[str, str] = ExpiringMap(
            clock, max_entries=max_entries, ttl=ttl, sliding=False
        )

    @property
    def evicted(self) -> int:
        """Entries dropped to make room before they expired (for metrics and tests)."""
        return self._entries.evicted

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        """Whether an entry is kept under ``key`` (a token's hash: never the token)."""
        return key in self._entries

    async def remember(self, token: str, homeserver: str) -> bool:
        return self._entries.put_new(token_key(token), homeserver)

    async def take(self, token: str) -> str | None:
        return self._entries.pop(token_key(token))


class SharedSsoTokenStore:
    """An :class:`SsoTokenStore` in the shared state: every portal process sees every entry;
    expiry is the state's (``EX``), so no size bound is needed here. Raises the state's
    ``StateUnavailable`` when it cannot answer."""

    def __init__(self, state: SharedState, ttl: float) -> None:
        self._state = state
        self._ttl = whole_seconds(ttl)

    async def remember(self, token: str, homeserver: str) -> bool:
        return await self._state.put_new(SSO_PREFIX + token_key(token), homeserver, self._ttl)

    async def take(self, token: str) -> str | None:
        return await self._state.take(SSO_PREFIX + token_key(token))
