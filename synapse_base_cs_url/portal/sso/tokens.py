"""Which homeserver issued each SSO login token (footnote [1] of MSC1730).

The portal sees every login token on its way from the homeserver to the client (the SSO
``redirectUrl`` points at the portal's callback), remembers ``token -> homeserver`` here, and
routes the client's ``m.login.token`` login to that homeserver.

:class:`SsoTokenStore` is the interface the portal uses; :class:`InMemorySsoTokenStore` is
the only implementation so far. It lives in one portal process: the callback and the login must
reach the same process (one portal, or sticky routing by client). A shared store (Redis,
say: ``SET key hs EX ttl NX`` and ``GETDEL key``) would implement the same two coroutines.

Tokens are never kept as such: entries are keyed by ``token_key(token)`` (SHA-256), so
neither a memory dump nor a shared store reveals a usable token.
"""

from __future__ import annotations

import collections
import hashlib
from typing import Protocol

from synapse_base_cs_url.portal.reactor import Clock


def token_key(token: str) -> str:
    """What stores key on: the SHA-256 of the token, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_hash_for_logs(token: str) -> str:
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
