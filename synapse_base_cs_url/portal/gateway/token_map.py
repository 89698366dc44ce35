"""Which homeserver each access token (and each registration in progress) belongs to.

Keys are SHA-256 hashes of the tokens, never the tokens. Entries are forgotten after
``gateway.token_ttl`` without use (every lookup extends it), or when the token logs out.
In memory for one process; in the shared state (Redis) for several, so that a token learnt
by one portal process is known to all of them.
"""

from __future__ import annotations

import collections
import math
from typing import Protocol

from synapse_base_cs_url.portal.reactor import Clock

TOKEN_PREFIX = "gw:token:"
SESSION_PREFIX = "gw:uia:"
#: Refresh tokens, by hash: ``POST /refresh`` carries no access token, only this.
REFRESH_PREFIX = "gw:refresh:"


class TokenMap(Protocol):
    async def remember(self, key: str, homeserver: str, ttl: float) -> None: ...

    async def lookup(self, key: str, ttl: float) -> str | None:
        """The homeserver for ``key``, and its lifetime extended to ``ttl`` seconds."""
        ...

    async def forget(self, key: str) -> None: ...


class InMemoryTokenMap:
    """A bounded map in one process: least recently used entries go first when full."""

    def __init__(self, max_entries: int, clock: Clock) -> None:
        self._max = max_entries
        self._clock = clock
        self._entries: collections.OrderedDict[str, tuple[float, str]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def remember(self, key: str, homeserver: str, ttl: float) -> None:
        self._entries[key] = (self._clock.seconds() + ttl, homeserver)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def lookup(self, key: str, ttl: float) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expiry, homeserver = entry
        now = self._clock.seconds()
        if expiry <= now:
            del self._entries[key]
            return None
        self._entries[key] = (now + ttl, homeserver)
        self._entries.move_to_end(key)
        return homeserver

    async def forget(self, key: str) -> None:
        self._entries.pop(key, None)


class SharedState(Protocol):
    async def put(self, key: str, value: str, ttl_seconds: int) -> None: ...

    async def get_extending(self, key: str, ttl_seconds: int) -> str | None: ...

    async def delete(self, key: str) -> None: ...


class SharedTokenMap:
    """The map in the shared state (``state.backend: redis``)."""

    def __init__(self, state: SharedState) -> None:
        self._state = state

    async def remember(self, key: str, homeserver: str, ttl: float) -> None:
        await self._state.put(key, homeserver, max(1, math.ceil(ttl)))

    async def lookup(self, key: str, ttl: float) -> str | None:
        return await self._state.get_extending(key, max(1, math.ceil(ttl)))

    async def forget(self, key: str) -> None:
        await self._state.delete(key)
