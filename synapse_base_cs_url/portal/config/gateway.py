"""``client_api`` and ``gateway``: the portal carrying the whole client-server API for
clients that stay at its address after logging in (they ignore ``well_known``)."""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping

import attr

from synapse_base_cs_url.core.config_values import (
    positive_int,
    positive_rate,
    positive_seconds,
    section,
    strings,
)
from synapse_base_cs_url.core.matchers import IPNetwork

DEFAULT_CLIENT_API_TIMEOUT = 60.0

DEFAULT_LONG_POLL_MARGIN = 30.0

#: The gateway's keys in the ``timeouts`` section.
GATEWAY_TIMEOUT_KEYS = ("client_api", "long_poll_margin")
#: Bytes of an upload held while its homeserver is not reading yet (then the client waits).
UPLOAD_HOLD = 256 * 1024
GATEWAY_KEYS = (
    "token_ttl",
    "max_tokens",
    "resolve_concurrency",
    "resolve_per_second",
    "resolve_burst",
    "unknown_token_ttl",
    "max_upload_size",
    "trusted_proxies",
    "decision_cache_ttl",
)


class ClientApi(str, enum.Enum):
    """What the portal does with client-server API requests it does not answer itself."""

    REFUSE = "refuse"
    """404 ``M_UNRECOGNIZED``, pointing at the homeserver in the login response."""
    PROXY = "proxy"
    """Forward them to the user's homeserver."""


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class GatewaySettings:
    client_api_timeout: float = DEFAULT_CLIENT_API_TIMEOUT
    """``timeouts.client_api``: seconds until a homeserver's answer starts, for every request
    but /sync."""
    long_poll_margin: float = DEFAULT_LONG_POLL_MARGIN
    """``timeouts.long_poll_margin``: seconds a /sync may take beyond the ``timeout`` the
    client asked for."""
    token_ttl: float = 7 * 24 * 3600.0
    """Seconds an access token's homeserver is remembered after its last use (sliding)."""
    max_tokens: int = 1_000_000
    """Most tokens remembered at once by the memory backend (the least recently used is
    dropped)."""
    resolve_concurrency: int = 16
    """Unknown tokens being resolved (asking the homeservers ``whoami``) at once."""
    resolve_per_second: float = 1.0
    resolve_burst: int = 10
    """Resolutions one client address may start: a burst, then this many a second."""
    unknown_token_ttl: float = 10.0
    """Seconds a token no homeserver knows is answered 401 without asking again."""
    max_upload_size: int = 100 * 1024 * 1024
    """Largest request body (bytes) passed on; a homeserver has its own limit as well."""
    trusted_proxies: tuple[IPNetwork, ...] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    """Who may ask the decision endpoint where a request goes (nginx's ``auth_request``)."""
    decision_cache_ttl: float = 10.0
    """Seconds nginx may cache a decision for a token (``X-Accel-Expires``)."""


def parse_client_api(raw: object) -> ClientApi:
    if raw is None:
        return ClientApi.REFUSE
    for value in ClientApi:
        if raw == value.value:
            return value
    allowed = ", ".join(v.value for v in ClientApi)
    raise ValueError(f"client_api: unknown value {raw!r}; allowed: {allowed}")


def parse_gateway(raw: object, timeouts: Mapping[object, object]) -> GatewaySettings:
    """The ``gateway`` section, and the gateway's keys of the ``timeouts`` section (already
    checked)."""
    raw = {} if raw is None else section(raw, "gateway", GATEWAY_KEYS)
    d = GatewaySettings()
    proxies = d.trusted_proxies
    if raw.get("trusted_proxies") is not None:
        found: list[IPNetwork] = []
        for i, item in enumerate(
            strings(raw["trusted_proxies"], "gateway.trusted_proxies", "a CIDR")
        ):
            try:
                found.append(ipaddress.ip_network(item))
            except ValueError as e:
                raise ValueError(f"gateway.trusted_proxies[{i}]: {item!r}: {e}") from None
        proxies = tuple(found)
    return GatewaySettings(
        client_api_timeout=positive_seconds(
            timeouts.get("client_api", d.client_api_timeout), "timeouts.client_api"
        ),
        long_poll_margin=positive_seconds(
            timeouts.get("long_poll_margin", d.long_poll_margin), "timeouts.long_poll_margin"
        ),
        token_ttl=positive_seconds(raw.get("token_ttl", d.token_ttl), "gateway.token_ttl"),
        max_tokens=positive_int(raw.get("max_tokens", d.max_tokens), "gateway.max_tokens"),
        resolve_concurrency=positive_int(
            raw.get("resolve_concurrency", d.resolve_concurrency), "gateway.resolve_concurrency"
        ),
        resolve_per_second=positive_rate(
            raw.get("resolve_per_second", d.resolve_per_second), "gateway.resolve_per_second"
        ),
        resolve_burst=positive_int(
            raw.get("resolve_burst", d.resolve_burst), "gateway.resolve_burst"
        ),
        unknown_token_ttl=positive_seconds(
            raw.get("unknown_token_ttl", d.unknown_token_ttl), "gateway.unknown_token_ttl"
        ),
        max_upload_size=positive_int(
            raw.get("max_upload_size", d.max_upload_size),
            "gateway.max_upload_size",
            "whole number of bytes",
        ),
        trusted_proxies=proxies,
        decision_cache_ttl=positive_seconds(
            raw.get("decision_cache_ttl", d.decision_cache_ttl), "gateway.decision_cache_ttl"
        ),
    )
