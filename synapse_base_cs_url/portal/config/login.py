"""How logins are routed: ``mode``, ``routes``, ``server_name``, ``proxy_user_agents``, and
``discovery_cache_ttl`` (what clients ask before logging in)."""

from __future__ import annotations

import enum
import re

from synapse_base_cs_url.core.config_values import prefixed, strings
from synapse_base_cs_url.portal.config.homeservers import check_server_name

DEFAULT_DISCOVERY_TTL = 10.0

#: ``dart:io``'s HttpClient sends ``Dart/<version> (dart:io)`` and does not follow a 307 on POST.
DEFAULT_PROXY_USER_AGENTS = ("Dart/",)


class Mode(str, enum.Enum):
    """How a routed login reaches its homeserver; the value is the config spelling."""

    REDIRECT = "redirect"
    PROXY = "proxy"
    AUTO = "auto"


MODE_NAMES = tuple(m.value for m in Mode)


def parse_mode(raw: object) -> Mode:
    for mode in Mode:
        if raw == mode.value:
            return mode
    raise ValueError(f"mode: unknown mode {raw!r}; allowed: {', '.join(MODE_NAMES)}")


def parse_server_name(raw: object) -> str | None:
    if raw is None:
        return None
    return prefixed("server_name", check_server_name, raw)


def parse_user_agents(raw: object) -> tuple[re.Pattern[str], ...]:
    if isinstance(raw, (list, tuple)) and not raw:
        return ()  # an empty list is allowed: auto mode then always redirects
    patterns: list[re.Pattern[str]] = []
    single = isinstance(raw, str)
    for i, item in enumerate(strings(raw, "proxy_user_agents", "a regular expression")):
        where = "proxy_user_agents" if single else f"proxy_user_agents[{i}]"
        try:
            patterns.append(re.compile(item))
        except re.error as e:
            raise ValueError(f"{where}: invalid regex {item!r}: {e}") from None
    return tuple(patterns)
