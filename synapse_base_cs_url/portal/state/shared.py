"""What the portal needs of the state shared by its processes: one protocol, which
``redis.RedisState`` provides (every command bounded in time, failing with
:class:`StateUnavailable`), and the one way a request meets that failure
(:func:`guarded`: a ``503`` naming what the request was doing)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Protocol, TypeVar

from synapse_base_cs_url.portal import errors

logger = logging.getLogger("synapse_base_cs_url.portal")

T = TypeVar("T")

#: What a client that got a 503 because the shared state did not answer is told to wait
#: (seconds): about how long the Redis client takes to reconnect once Redis is back.
STATE_RETRY_AFTER = 5.0


class StateUnavailable(Exception):
    """The shared state did not answer in time, or answered with an error."""


async def guarded(work: Awaitable[T], what: str) -> T:
    """``work``'s answer; the shared state being unavailable is a ``503`` for the client,
    saying that ``what`` (``"This login"``, ``"This registration"``...) is not possible
    right now, and a warning in the log."""
    try:
        return await work
    except StateUnavailable as e:
        logger.warning("%s: the shared state is unavailable: %s", what, e)
        raise errors.unavailable(what, STATE_RETRY_AFTER) from None


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
