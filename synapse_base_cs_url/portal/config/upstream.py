"""``upstream`` and ``timeouts``: the portal's connections to its homeservers."""

from __future__ import annotations

from collections.abc import Mapping

import attr

from synapse_base_cs_url.core.config_values import positive_int, positive_seconds, section

DEFAULT_CONNECT_TIMEOUT = 5.0

DEFAULT_TOTAL_TIMEOUT = 30.0

#: Idle kept-alive connections per homeserver, and how long each is kept: shorter than the
#: keep-alive timeout of the homeserver (or of a reverse proxy in front of it), so that the
#: portal closes an idle connection before the other side does.
DEFAULT_MAX_IDLE_CONNECTIONS = 32

DEFAULT_UPSTREAM_IDLE_TIMEOUT = 30.0

#: Login answers and discovery documents are small; anything larger is not a homeserver's.
DEFAULT_MAX_RESPONSE_SIZE = 4 * 1024 * 1024

#: The homeservers' timeouts; the ``timeouts`` section also holds the gateway's
#: (``config/gateway.py``).
TIMEOUT_KEYS = ("connect", "total")

#: Failures in a row (refused, unreachable, timed out) that mark a homeserver down, and the
#: seconds between probes of a homeserver that is down.
DEFAULT_FAILURES_TO_DOWN = 3
DEFAULT_PROBE_INTERVAL = 2.0

UPSTREAM_KEYS = (
    "max_idle_connections",
    "idle_timeout",
    "max_response_size",
    "failures_to_down",
    "probe_interval",
)


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Timeouts:
    connect: float = DEFAULT_CONNECT_TIMEOUT
    """Seconds to connect to a homeserver."""
    total: float = DEFAULT_TOTAL_TIMEOUT
    """Seconds for a whole exchange the portal reads at once (a login, discovery, whoami)."""


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class UpstreamSettings:
    """The portal's connections to its homeservers."""

    max_idle_connections: int = DEFAULT_MAX_IDLE_CONNECTIONS
    """Idle kept-alive connections kept per homeserver."""
    idle_timeout: float = DEFAULT_UPSTREAM_IDLE_TIMEOUT
    """Seconds an idle connection is kept before the portal closes it."""
    max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE
    """Bytes of a homeserver's answer body the portal reads at most (then 502)."""
    failures_to_down: int = DEFAULT_FAILURES_TO_DOWN
    """Failures in a row (refused, unreachable, timed out) that mark a homeserver down:
    nothing waits for it until a probe finds it up again."""
    probe_interval: float = DEFAULT_PROBE_INTERVAL
    """Seconds between two probes (``GET /health``) of a homeserver that is down (each
    shifted by up to a fifth either way, so that replicas do not probe in step)."""


def parse_timeouts(raw: Mapping[object, object]) -> Timeouts:
    """From the ``timeouts`` section (its keys already checked)."""
    connect = positive_seconds(raw.get("connect", DEFAULT_CONNECT_TIMEOUT), "timeouts.connect")
    total = positive_seconds(raw.get("total", DEFAULT_TOTAL_TIMEOUT), "timeouts.total")
    if connect > total:
        raise ValueError(
            f"timeouts.connect: {connect:g}s is longer than timeouts.total ({total:g}s)"
        )
    return Timeouts(connect=connect, total=total)


def parse_upstream(raw: object) -> UpstreamSettings:
    if raw is None:
        return UpstreamSettings()
    raw = section(raw, "upstream", UPSTREAM_KEYS)
    return UpstreamSettings(
        max_idle_connections=positive_int(
            raw.get("max_idle_connections", DEFAULT_MAX_IDLE_CONNECTIONS),
            "upstream.max_idle_connections",
        ),
        idle_timeout=positive_seconds(
            raw.get("idle_timeout", DEFAULT_UPSTREAM_IDLE_TIMEOUT), "upstream.idle_timeout"
        ),
        max_response_size=positive_int(
            raw.get("max_response_size", DEFAULT_MAX_RESPONSE_SIZE),
            "upstream.max_response_size",
            "whole number of bytes",
        ),
        failures_to_down=positive_int(
            raw.get("failures_to_down", DEFAULT_FAILURES_TO_DOWN), "upstream.failures_to_down"
        ),
        probe_interval=positive_seconds(
            raw.get("probe_interval", DEFAULT_PROBE_INTERVAL), "upstream.probe_interval"
        ),
    )
