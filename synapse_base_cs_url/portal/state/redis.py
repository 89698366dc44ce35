"""Redis for state shared by portal processes, through txredisapi (Synapse's own Redis
client: ``synapse-base-cs-url[portal]`` installs it for a portal on its own, and
``matrix-synapse[redis]`` already has it, so the portal adds nothing to a Synapse
virtualenv).

Every command has a bounded time (``state.command_timeout``): a Redis that is down or slow
makes the request that needed it fail with :class:`StateUnavailable` (a 503 for the client),
never hang. After such a failure Redis is **down** for this process: commands fail at once,
without waiting ``command_timeout`` again, until a probe (``PING`` every
``state.probe_interval`` seconds) answers. txredisapi reconnects by itself, with backoff.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from twisted.internet import defer

from synapse_base_cs_url.portal.config.state import RedisAddress, StateSettings
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.state.shared import StateUnavailable

logger = logging.getLogger(__name__)

#: ``SET key value EX ttl NX`` needs Redis 2.6.12.
OLDEST_REDIS = (2, 6, 12)
#: ``GETDEL`` (an atomic get-and-delete) came with Redis 6.2; older ones run this script.
GETDEL_SINCE = (6, 2, 0)
GETDEL_SCRIPT = (
    "local v = redis.call('GET', KEYS[1]) if v then redis.call('DEL', KEYS[1]) end return v"
)
#: Connections kept to Redis per process.
POOL_SIZE = 2


class RedisDown(StateUnavailable):
    """Redis did not answer: nothing waits for it until a probe does."""


class RedisState:
    """The few commands the portal needs, each bounded in time."""

    def __init__(
        self,
        settings: StateSettings,
        clock: Clock,
        on_change: Callable[[bool], None] = lambda up: None,
    ) -> None:
        """``on_change(up)``: told when Redis is marked down, and when a probe finds it up
        again (and once now: up)."""
        address = settings.redis
        assert address is not None, "a Redis state needs state.url"
        self.address = address
        self.prefix = settings.key_prefix
        self._timeout = settings.command_timeout
        self._clock = clock
        self._connection = _connect(address, settings.command_timeout)
        self._has_getdel = True
        self._probe_interval = settings.probe_interval
        self._down: str | None = None
        """Why Redis is down (``None``: up)."""
        self._probe: Any = None
        self._closed = False
        self._on_change = on_change
        on_change(True)

    @property
    def down(self) -> bool:
        return self._down is not None

    async def check(self) -> str:
        """Redis's version, once it answers; :class:`StateUnavailable` if it cannot be used."""
        info = await self._run("INFO", "server")
        match = re.search(r"redis_version:(\d+)\.(\d+)\.(\d+)", str(info))
        if match is None:
            raise StateUnavailable("INFO server did not name a redis_version")
        version = tuple(int(part) for part in match.groups())
        if version < OLDEST_REDIS:
            raise StateUnavailable(
                f"Redis {'.'.join(map(str, version))} is too old: "
                f"{'.'.join(map(str, OLDEST_REDIS))} or newer is needed"
            )
        self._has_getdel = version >= GETDEL_SINCE
        return ".".join(map(str, version))

    async def ping(self) -> bool:
        """Whether Redis answers now (for readiness checks; nothing waits while it is down)."""
        try:
            await self._run("PING")
        except StateUnavailable:
            return False
        return True

    async def put_new(self, key: str, value: str, ttl_seconds: int) -> bool:
        """``SET key value EX ttl NX``: whether ``key`` was new (and is now set)."""
        result = await self._run("SET", self.prefix + key, value, "EX", ttl_seconds, "NX")
        return result is not None

    async def take(self, key: str) -> str | None:
        """The value of ``key``, deleted in the same step (so only one taker gets it)."""
        full = self.prefix + key
        if self._has_getdel:
            result = await self._run("GETDEL", full)
        else:
            result = await self._run("EVAL", GETDEL_SCRIPT, 1, full)
        return None if result is None else str(result)

    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        """``SET key value EX ttl``."""
        await self._run("SET", self.prefix + key, value, "EX", ttl_seconds)

    async def get(self, key: str) -> str | None:
        result = await self._run("GET", self.prefix + key)
        return None if result is None else str(result)

    async def get_extending(self, key: str, ttl_seconds: int) -> str | None:
        """The value of ``key``, its lifetime extended to ``ttl_seconds`` (``GETEX``, or
        ``GET`` then ``EXPIRE`` before Redis 6.2)."""
        full = self.prefix + key
        if self._has_getdel:  # GETEX came with GETDEL, in 6.2
            result = await self._run("GETEX", full, "EX", ttl_seconds)
        else:
            result = await self._run("GET", full)
            if result is not None:
                await self._run("EXPIRE", full, ttl_seconds)
        return None if result is None else str(result)

    async def delete(self, key: str) -> None:
        await self._run("DEL", self.prefix + key)

    async def _run(self, *command: Any) -> Any:
        if self._down is not None:
            raise StateUnavailable(self._down + " (not waited for until a probe answers)")
        try:
            return await self._execute(*command)
        except RedisDown as e:
            self._mark_down(str(e))
            raise

    def _mark_down(self, why: str) -> None:
        if self._down is not None or self._closed:
            return
        self._down = why
        logger.warning("Redis is down: %s; probed every %gs", why, self._probe_interval)
        self._on_change(False)
        self._schedule_probe()

    def _schedule_probe(self) -> None:
        if not self._closed:
            self._probe = self._clock.callLater(
                self._probe_interval, lambda: defer.ensureDeferred(self._run_probe())
            )

    async def _run_probe(self) -> None:
        try:
            await self._execute("PING")
        except StateUnavailable:
            self._schedule_probe()
            return
        self._down = None
        logger.info("Redis is up again at %s", self.address.shown())
        self._on_change(True)

    async def _execute(self, *command: Any) -> Any:
        """The command's reply; :class:`RedisDown` when Redis did not answer (timed out, no
        connection), :class:`StateUnavailable` for an error reply (Redis is up), and a
        caller's cancellation as it is (nobody's failure)."""
        d: defer.Deferred[Any] = self._connection.execute_command(*command)
        d.addTimeout(self._timeout, self._clock)  # type: ignore[arg-type]
        try:
            return await d
        except defer.TimeoutError:
            # txredisapi keeps reconnecting: a refused TLS handshake looks like silence.
            tls = " (over TLS: is its certificate valid for that host, and trusted?)"
            raise RedisDown(
                f"Redis at {self.address.shown()} did not answer within {self._timeout:g}s"
                + (tls if self.address.tls else "")
            ) from None
        except defer.CancelledError:
            raise
        except Exception as e:
            problem = f"Redis at {self.address.shown()}: {type(e).__name__}: {e}"
            if _is_reply(e):
                raise StateUnavailable(problem) from None  # an error reply: Redis is up
            raise RedisDown(problem) from None

    def close(self) -> None:
        self._closed = True
        if self._probe is not None and self._probe.active():
            self._probe.cancel()
        disconnect = getattr(self._connection, "disconnect", None)
        if disconnect is not None:
            disconnect()


def _is_reply(e: Exception) -> bool:
    """An error reply of Redis (txredisapi's ``ResponseError`` and its kinds: ``NOPERM``, a
    script refused...): Redis answered, so it is not down."""
    return any(cls.__name__ == "ResponseError" for cls in type(e).__mro__)


def _connect(address: RedisAddress, timeout: float) -> Any:
    """A lazy, reconnecting txredisapi pool: commands wait (bounded by the caller) while it
    (re)connects."""
    try:
        import txredisapi
    except ImportError:
        raise ValueError(
            "state.backend: redis needs the txredisapi package: "
            'pip install "synapse-base-cs-url[portal]" (or matrix-synapse[redis] in a '
            "Synapse virtualenv)"
        ) from None
    common: dict[str, Any] = {
        "dbid": address.db,
        "poolsize": POOL_SIZE,
        "reconnect": True,
        "password": address.password,
        "connectTimeout": timeout,
        "replyTimeout": timeout,
        # Values are homeserver names: "01" must stay "01", not become the number 1.
        "convertNumbers": False,
    }
    if address.username is not None:
        common["username"] = address.username
    if address.scheme == "unix":
        return txredisapi.lazyUnixConnectionPool(address.path, **common)
    tls: Any = False
    if address.tls:
        from twisted.internet.ssl import optionsForClientTLS

        tls = optionsForClientTLS(address.host)
    return txredisapi.lazyConnectionPool(
        address.host, address.port, ssl_context_factory=tls, **common
    )
