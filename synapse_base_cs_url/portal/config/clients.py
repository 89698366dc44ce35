"""``clients``: what one client may make the portal remember, and how a client is counted.

Every record the portal keeps on a client's behalf (a registration's placement, a
registration session, a password reset's client secret, an SSO login token) is written only
after that client passes ``clients.records_burst`` / ``clients.records_per_second``: no
client can fill the portal's memory (or Redis) and push out other users' flows.

A client is its IP address; an IPv6 client is its ``clients.ipv6_prefix_length`` network
(a /64 by default: one subscriber line gets a whole /64, so counting single addresses would
let one client rotate through 2^64 of them). Every per-client limit counts this way (token
resolutions and directory lookups too).
"""

from __future__ import annotations

import attr

from synapse_base_cs_url.core.config_values import positive_int, positive_rate, section

CLIENTS_KEYS = ("ipv6_prefix_length", "records_per_second", "records_burst")


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class ClientLimits:
    ipv6_prefix_length: int = 64
    """IPv6 clients are counted by this network (``128``: by address)."""
    records_per_second: float = 0.2
    records_burst: int = 30
    """Records (placements, sessions, reset secrets, SSO tokens) one client may have the
    portal keep: a burst, then this many a second."""


def parse_clients(raw: object) -> ClientLimits:
    if raw is None:
        return ClientLimits()
    raw = section(raw, "clients", CLIENTS_KEYS)
    d = ClientLimits()
    prefix = positive_int(
        raw.get("ipv6_prefix_length", d.ipv6_prefix_length), "clients.ipv6_prefix_length"
    )
    if not 16 <= prefix <= 128:
        raise ValueError(f"clients.ipv6_prefix_length: must be from 16 to 128, not {prefix}")
    return ClientLimits(
        ipv6_prefix_length=prefix,
        records_per_second=positive_rate(
            raw.get("records_per_second", d.records_per_second), "clients.records_per_second"
        ),
        records_burst=positive_int(
            raw.get("records_burst", d.records_burst), "clients.records_burst"
        ),
    )
