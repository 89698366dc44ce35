"""How the portal serves: where it listens, how many processes, limits on client connections
and request bodies, draining, metrics."""

from __future__ import annotations

import attr

from synapse_base_cs_url.core.config_values import (
    boolean,
    positive_int,
    positive_seconds,
    section,
)

DEFAULT_HOST = "127.0.0.1"

DEFAULT_PORT = 8080

DEFAULT_MAX_BODY_SIZE = 64 * 1024

DEFAULT_WORKERS = 1

DEFAULT_SHUTDOWN_GRACE = 10.0

#: Client connections open at once. Each is a file descriptor: keep this below the process's
#: open-files limit (the portal raises its soft limit to the hard one at startup).
DEFAULT_MAX_CONNECTIONS = 1000

DEFAULT_HEADER_TIMEOUT = 10.0

DEFAULT_BODY_TIMEOUT = 30.0

#: Silence allowed on a client's connection between requests.
DEFAULT_CLIENT_IDLE_TIMEOUT = 60.0

LISTEN_KEYS = ("host", "port", "x_forwarded")

CONNECTION_KEYS = ("max", "header_timeout", "body_timeout", "idle_timeout")


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Listen:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    x_forwarded: bool = False
    """Trust ``X-Forwarded-For`` / ``-Proto`` from the reverse proxy in front of the portal."""


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class Connections:
    """Limits on client connections, so that slow or idle clients cannot hold them."""

    max: int = DEFAULT_MAX_CONNECTIONS
    """Open at once; a connection past it is answered 503 and closed at once."""
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    """Seconds from a request's first byte to the end of its headers."""
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    """Seconds from the end of a request's headers to the end of its body."""
    idle_timeout: float = DEFAULT_CLIENT_IDLE_TIMEOUT
    """Seconds a connection may stay silent between requests (or before the first)."""


def parse_listen(raw: object) -> Listen:
    if raw is None:
        return Listen()
    raw = section(raw, "listen", LISTEN_KEYS)
    host = raw.get("host", DEFAULT_HOST)
    if not isinstance(host, str) or not host:
        raise ValueError(f"listen.host: must be an IP address or host name, not {host!r}")
    port = raw.get("port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"listen.port: must be a port number (0-65535), not {port!r}")
    return Listen(
        host=host,
        port=port,
        x_forwarded=boolean(raw.get("x_forwarded", False), "listen.x_forwarded"),
    )


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
