"""The module's ``placement`` section: ask the portal before an account or an address is
created on this homeserver, and answer the portal's directory lookups.

    placement:
      portal_url: http://portal.internal:8080   # the portal, as this homeserver reaches it
      secret_file: /etc/synapse/placement.secret # this homeserver's placement secret
      timeout: 5                                 # seconds one ask may take
      when_portal_unreachable: refuse            # or allow
      follow_routes: false                       # true: only what the routes place here
"""

from __future__ import annotations

import enum

import attr

from synapse_base_cs_url.core.config_values import (
    boolean,
    positive_seconds,
    prefixed,
    required,
    section,
)
from synapse_base_cs_url.core.secrets import MIN_SHARED_SECRET, read_secret_file
from synapse_base_cs_url.core.urls import validate_base_url

PLACEMENT_KEYS = (
    "portal_url",
    "secret_file",
    "timeout",
    "when_portal_unreachable",
    "follow_routes",
)
#: The longest an ask may be given: a registration waits for it.
MAX_TIMEOUT = 60.0


class Unreachable(str, enum.Enum):
    """What happens to a registration or an address when the portal gives no answer."""

    REFUSE = "refuse"
    """Refused with a retriable error: never a duplicate (the default)."""
    ALLOW = "allow"
    """Created unchecked: the homeserver's own rules only (a duplicate becomes possible)."""


@attr.s(auto_attribs=True, frozen=True, slots=True)
class PlacementSettings:
    portal_url: str
    secret: str = attr.ib(repr=False)
    """Never logged, never shown."""
    timeout: float = 5.0
    when_portal_unreachable: Unreachable = Unreachable.REFUSE
    follow_routes: bool = False
    """Names and addresses may only be created on the homeserver the portal's routes place
    them on (an e-mail's domain decides, say), not only be unique."""

    @staticmethod
    def from_config(raw: object) -> PlacementSettings | None:
        if raw is None:
            return None
        raw = section(raw, "placement", PLACEMENT_KEYS)
        portal_url = prefixed(
            "placement.portal_url", validate_base_url, required(raw, "portal_url", "placement.")
        )
        secret = read_secret_file(
            required(raw, "secret_file", "placement."),
            "placement.secret_file",
            what="secret",
            min_length=MIN_SHARED_SECRET,
        )
        timeout = positive_seconds(raw.get("timeout", 5.0), "placement.timeout")
        if timeout > MAX_TIMEOUT:
            raise ValueError(f"placement.timeout: at most {MAX_TIMEOUT:g} seconds, not {timeout:g}")
        policy = raw.get("when_portal_unreachable", Unreachable.REFUSE.value)
        allowed = [u.value for u in Unreachable]
        if policy not in allowed:
            raise ValueError(
                f"placement.when_portal_unreachable: must be one of {', '.join(allowed)}, "
                f"not {policy!r}"
            )
        follow_routes = boolean(raw.get("follow_routes", False), "placement.follow_routes")
        return PlacementSettings(portal_url, secret, timeout, Unreachable(policy), follow_routes)
