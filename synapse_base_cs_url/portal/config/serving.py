"""How the portal serves: where it listens, how many processes, limits on client connections
and request bodies, draining, metrics."""

from __future__ import annotations

from collections.abc import Mapping

import attr

from synapse_base_cs_url.core.config_values import (
    boolean,
    positive_int,
    positive_seconds,
    required,
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

METRICS_LISTENER_KEYS = ("host", "port")

#: ``metrics: public``: serve ``/metrics`` on the public listener (the behaviour of old).
METRICS_PUBLIC = "public"

#: What ``metrics: true`` says. It used to put ``/metrics`` on the public listener, where
#: anyone who can reach the portal reads its traffic; now it must be said which is meant.
METRICS_TRUE = (
    "metrics: true is no longer accepted (it served /metrics on the public listener, to "
    "anyone who can reach the portal); write 'metrics: public' to keep that, or "
    "'metrics: {host: 127.0.0.1, port: 9101}' to serve it on a listener of its own"
)


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


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class MetricsListener:
    """A listener of its own for ``GET /metrics``, apart from the public one, so that the
    portal's traffic figures reach the scraper and nobody else."""

    host: str = DEFAULT_HOST
    port: int


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class Metrics:
    """Where ``GET /metrics`` is served: nowhere (the default: the public listener is open to
    every client, and the figures say who logs in where and how much), on the public
    listener (``metrics: public``), or on a listener of its own (``listener``)."""

    public: bool = False
    listener: MetricsListener | None = None


def _host(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{path}: must be an IP address or host name, not {value!r}")
    return value


def _port(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"{path}: must be a port number (0-65535), not {value!r}")
    return value


def parse_listen(raw: object) -> Listen:
    if raw is None:
        return Listen()
    raw = section(raw, "listen", LISTEN_KEYS)
    return Listen(
        host=_host(raw.get("host", DEFAULT_HOST), "listen.host"),
        port=_port(raw.get("port", DEFAULT_PORT), "listen.port"),
        x_forwarded=boolean(raw.get("x_forwarded", False), "listen.x_forwarded"),
    )


def parse_metrics(raw: object) -> Metrics:
    """``metrics``: absent, null or ``false`` (not served), ``public``, or ``{host, port}``.
    ``true`` is refused rather than read as either: it once meant ``public``, and reading it
    as ``public`` would keep the exposure this setting was changed to end."""
    if raw is None or raw is False:
        return Metrics()
    if raw is True:
        raise ValueError(METRICS_TRUE)
    if raw == METRICS_PUBLIC:
        return Metrics(public=True)
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"metrics: must be false, '{METRICS_PUBLIC}' or a mapping (keys: "
            f"{', '.join(METRICS_LISTENER_KEYS)}), not {raw!r}"
        )
    raw = section(raw, "metrics", METRICS_LISTENER_KEYS)
    return Metrics(
        listener=MetricsListener(
            host=_host(raw.get("host", DEFAULT_HOST), "metrics.host"),
            port=_port(required(raw, "port", "metrics."), "metrics.port"),
        )
    )


def check_metrics_apart(listen: Listen, metrics: Metrics) -> None:
    """The metrics listener must not share the public port: with ``workers`` both sockets
    are bound with ``SO_REUSEPORT``, which would let both bind and split the connections
    between them (a client's login answered by the metrics page, a scrape by the portal).
    Port 0 (any free port) cannot clash."""
    own = metrics.listener
    if own is not None and own.port != 0 and own.port == listen.port:
        raise ValueError(
            f"metrics.port: {own.port} is listen.port too; the metrics listener needs a port "
            f"of its own"
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
