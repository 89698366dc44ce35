"""What the portal needs of the state shared by its processes: one protocol, which
``redis.RedisState`` provides (every command bounded in time, failing with
``StateUnavailable``)."""

from __future__ import annotations

from typing import Protocol


class SharedState(Protocol):
    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        """Set ``key`` for ``ttl_seconds``."""
        ...

    async def put_new(self, key: str, value: str, ttl_seconds: int) -> bool:
        """Set ``key`` unless it is set; whether it was."""
        ...

    async def get(self, key: str) -> str | None: ...

    async def get_extending(self, key: str, ttl_seconds: int) -> str | None:
        """The value, its life extended to ``ttl_seconds``."""
        ...

    async def take(self, key: str) -> str | None:
        """The value, deleted in the same step (one taker gets it)."""
        ...

    async def delete(self, key: str) -> None: ...
