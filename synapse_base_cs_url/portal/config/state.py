"""``state``: where state shared by every portal process lives (memory for one process, or
Redis for several)."""

from __future__ import annotations

import enum
import urllib.parse

import attr

from synapse_base_cs_url.core.config_values import positive_seconds, section, type_name

DEFAULT_KEY_PREFIX = "synapse_base_cs_url:"

DEFAULT_COMMAND_TIMEOUT = 2.0

STATE_KEYS = ("backend", "url", "key_prefix", "command_timeout", "probe_interval")
#: Seconds between two probes (PING) of a Redis that failed a command.
DEFAULT_PROBE_INTERVAL = 1.0

REDIS_SCHEMES = ("redis", "rediss", "unix")


class Backend(str, enum.Enum):
    MEMORY = "memory"
    REDIS = "redis"


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class RedisAddress:
    """Where Redis is: TCP (``redis://``, or TLS with ``rediss://``) or a Unix socket."""

    scheme: str
    host: str = ""
    port: int = 6379
    path: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = attr.ib(default=None, repr=False)

    @property
    def tls(self) -> bool:
        return self.scheme == "rediss"

    def shown(self) -> str:
        """For logs and errors: never the password."""
        where = self.path if self.scheme == "unix" else f"{self.host}:{self.port}"
        return f"{self.scheme}://{where}/{self.db}"


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class StateSettings:
    """Where state shared by every portal process lives: SSO login tokens (and their
    homeserver)."""

    backend: Backend = Backend.MEMORY
    redis: RedisAddress | None = None
    key_prefix: str = DEFAULT_KEY_PREFIX
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    probe_interval: float = DEFAULT_PROBE_INTERVAL
    """Seconds between two probes (``PING``) of a Redis that failed a command: until one
    answers, nothing waits for Redis (``state.command_timeout`` is not spent again)."""
    """Seconds a Redis command may take before the request that needed it gets a 503."""


def parse_state(raw: object) -> StateSettings:
    if raw is None:
        return StateSettings()
    raw = section(raw, "state", STATE_KEYS)
    backend_raw = raw.get("backend", Backend.MEMORY.value)
    backend = next((b for b in Backend if b.value == backend_raw), None)
    if backend is None:
        allowed = ", ".join(b.value for b in Backend)
        raise ValueError(f"state.backend: unknown backend {backend_raw!r}; allowed: {allowed}")
    prefix = raw.get("key_prefix", DEFAULT_KEY_PREFIX)
    if not isinstance(prefix, str):
        raise ValueError(f"state.key_prefix: must be a string, not {type_name(prefix)}")
    timeout = positive_seconds(
        raw.get("command_timeout", DEFAULT_COMMAND_TIMEOUT), "state.command_timeout"
    )
    redis = None
    if backend is Backend.REDIS:
        if raw.get("url") is None:
            raise ValueError("state.url: required with backend redis (redis://host:6379/0)")
        redis = parse_redis_url(raw["url"], "state.url")
    elif raw.get("url") is not None:
        raise ValueError("state.url: only used with backend redis")
    probe_interval = positive_seconds(
        raw.get("probe_interval", DEFAULT_PROBE_INTERVAL), "state.probe_interval"
    )
    return StateSettings(
        backend=backend,
        redis=redis,
        key_prefix=prefix,
        command_timeout=timeout,
        probe_interval=probe_interval,
    )


def parse_redis_url(raw: object, path: str) -> RedisAddress:
    """``redis://[user:password@]host[:port][/db]``, ``rediss://...`` (TLS), or
    ``unix:///path/to/redis.sock[?db=N]``."""
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"{path}: must be a Redis URL such as redis://127.0.0.1:6379/0")
    parts = urllib.parse.urlsplit(raw)
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(
            f"{path}: scheme {parts.scheme!r} is not one of {', '.join(REDIS_SCHEMES)}"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{path}: invalid port") from None
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    if username and not password:
        raise ValueError(f"{path}: a user name without a password (redis://user:password@host/0)")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"{path}: a unix:// URL needs a socket path (unix:///run/redis.sock)")
        db_text = urllib.parse.parse_qs(parts.query).get("db", ["0"])[0]
        return RedisAddress(
            scheme="unix",
            path=parts.path,
            db=_db_number(db_text, path),
            username=username,
            password=password,
        )
    if not parts.hostname:
        raise ValueError(f"{path}: no host")
    db_text = parts.path.lstrip("/") or "0"
    return RedisAddress(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or 6379,
        db=_db_number(db_text, path),
        username=username,
        password=password,
    )


def _db_number(text: str, path: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{path}: the database must be a number, not {text!r}")
    return int(text)
