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

import collections
import hashlib
import math
from typing import Protocol

from synapse_base_cs_url.portal.reactor import Clock


def token_key(token: str) -> str:
    """What stores key on: the SHA-256 of the token, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_tag(token: str) -> str:
    """A short, non-reversible tag to correlate one token's callback and login in the logs."""
    return token_key(token)[:12]


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
    """An :class:`SsoTokenStore` in a dict: ``ttl`` seconds per entry, at most
    ``max_entries`` entries (when full, the oldest entry is dropped: its login then goes to
    the default SSO homeserver)."""

    def __init__(self, ttl: float, max_entries: int, clock: Clock) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        # key -> (expiry, homeserver), oldest first: the TTL is fixed, so insertion order is
        # expiry order and expired entries are always at the front.
        self._entries: collections.OrderedDict[str, tuple[float, str]] = collections.OrderedDict()
        self.evicted = 0
        """Entries dropped to make room before they expired (for metrics and tests)."""

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, (expiry, _) = next(iter(entries.items()))
            if expiry > now:
                return
            del entries[key]

    async def remember(self, token: str, homeserver: str) -> bool:
        now = self._clock.seconds()
        self._expire(now)
        key = token_key(token)
        if key in self._entries:
            return False
        while len(self._entries) >= self._max:
            self._entries.popitem(last=False)
            self.evicted += 1
        self._entries[key] = (now + self._ttl, homeserver)
        return True

    async def take(self, token: str) -> str | None:
        now = self._clock.seconds()
        self._expire(now)
        entry = self._entries.pop(token_key(token), None)
        if entry is None:
            return None
        _, homeserver = entry
        return homeserver


class KeyValueState(Protocol):
    """What the shared store needs of the shared state (``state.redis.RedisState``)."""

    async def put_new(self, key: str, value: str, ttl_seconds: int) -> bool: ...

    async def take(self, key: str) -> str | None: ...


#: Where SSO tokens live in the shared state, under ``state.key_prefix``.
SSO_KEY_PREFIX = "sso:"


class SharedSsoTokenStore:
    """An :class:`SsoTokenStore` in the shared state: every portal process sees every entry;
    expiry is the state's (``EX``), so no size bound is needed here. Raises the state's
    ``StateUnavailable`` when it cannot answer."""

    def __init__(self, state: KeyValueState, ttl: float) -> None:
        self._state = state
        self._ttl = max(1, math.ceil(ttl))

    async def remember(self, token: str, homeserver: str) -> bool:
        return await self._state.put_new(SSO_KEY_PREFIX + token_key(token), homeserver, self._ttl)

    async def take(self, token: str) -> str | None:
        return await self._state.take(SSO_KEY_PREFIX + token_key(token))
