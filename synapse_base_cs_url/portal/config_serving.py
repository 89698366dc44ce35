"""How the portal serves: processes, client connections, shared state, single sign-on keys.

The parts of ``portal.yaml`` that say how many processes run, how long a client may take to
send a request, where state shared between processes lives and which keys sign SSO
callbacks. Each parser raises ``ValueError`` naming the key, like the rest of the config.
"""

from __future__ import annotations

import enum
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import attr

from synapse_base_cs_url.core.config_values import (
    as_list,
    positive_int,
    positive_seconds,
    section,
    type_name,
)

DEFAULT_WORKERS = 1
DEFAULT_SHUTDOWN_GRACE = 10.0
#: Client connections open at once. Each is a file descriptor: keep this below the process's
#: open-files limit (the portal raises its soft limit to the hard one at startup).
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_KEY_PREFIX = "synapse_base_cs_url:"
DEFAULT_COMMAND_TIMEOUT = 2.0
#: Random bytes in a signing key file; fewer would weaken the HMAC.
MIN_SIGNING_KEY_BYTES = 32

CONNECTION_KEYS = ("max", "header_timeout", "body_timeout", "idle_timeout")
STATE_KEYS = ("backend", "url", "key_prefix", "command_timeout")
REDIS_SCHEMES = ("redis", "rediss", "unix")


class Backend(str, enum.Enum):
    MEMORY = "memory"
    REDIS = "redis"


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class Connections:
    """Limits on client connections, so that slow or idle clients cannot hold them."""

    max: int = DEFAULT_MAX_CONNECTIONS
    """Open at once; a connection past it is answered 503 and closed at once."""
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    """Seconds from a request's first byte to the end of its headers."""
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    """Seconds from the end of a request's headers to the end of its body."""
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    """Seconds a connection may stay silent between requests (or before the first)."""


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
    """Seconds a Redis command may take before the request that needed it gets a 503."""


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class SigningKeys:
    """The key that signs SSO callbacks, and older ones still accepted (rotation)."""

    current: bytes = attr.ib(repr=False)
    previous: tuple[bytes, ...] = attr.ib(default=(), repr=False)


def parse_workers(raw: object) -> int:
    if raw is None:
        return DEFAULT_WORKERS
    return positive_int(raw, "workers")


def parse_connections(raw: object) -> Connections:
    if raw is None:
        return Connections()
    raw = section(raw, "connections", CONNECTION_KEYS)
    defaults = Connections()
    return Connections(
        max=positive_int(raw.get("max", defaults.max), "connections.max"),
        header_timeout=positive_seconds(
            raw.get("header_timeout", defaults.header_timeout), "connections.header_timeout"
        ),
        body_timeout=positive_seconds(
            raw.get("body_timeout", defaults.body_timeout), "connections.body_timeout"
        ),
        idle_timeout=positive_seconds(
            raw.get("idle_timeout", defaults.idle_timeout), "connections.idle_timeout"
        ),
    )


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
    return StateSettings(backend=backend, redis=redis, key_prefix=prefix, command_timeout=timeout)


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


def parse_signing_keys(raw: Mapping[object, object]) -> SigningKeys | None:
    """``sso.signing_key_file`` and ``sso.previous_signing_key_files``, read now."""
    path = raw.get("signing_key_file")
    previous_raw = raw.get("previous_signing_key_files")
    if path is None:
        if previous_raw is not None:
            raise ValueError("sso.previous_signing_key_files: only used with sso.signing_key_file")
        return None
    current = read_signing_key(path, "sso.signing_key_file")
    previous: list[bytes] = []
    if previous_raw is not None:
        items = as_list(previous_raw)
        if items is None:
            raise ValueError(
                "sso.previous_signing_key_files: must be a list of file paths, not "
                + type_name(previous_raw)
            )
        for i, item in enumerate(items):
            previous.append(read_signing_key(item, f"sso.previous_signing_key_files[{i}]"))
    return SigningKeys(current=current, previous=tuple(previous))


def read_signing_key(raw: object, path: str) -> bytes:
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"{path}: must be a file path")
    try:
        key = Path(raw).read_bytes()
    except OSError as e:
        raise ValueError(
            f"{path}: cannot read {raw}: {e.strerror or e} "
            f"(make one with: synapse-base-cs-url generate-key {raw})"
        ) from None
    if len(key) < MIN_SIGNING_KEY_BYTES:
        raise ValueError(
            f"{path}: {raw} holds {len(key)} bytes; a signing key needs at least "
            f"{MIN_SIGNING_KEY_BYTES} (make one with: synapse-base-cs-url generate-key FILE)"
        )
    return key
