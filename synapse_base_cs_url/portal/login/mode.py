"""Which way a login reaches its homeserver: ``redirect`` (307) or ``proxy``; ``auto`` proxies
the clients whose HTTP stack does not follow a 307 on ``POST`` (by User-Agent)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from synapse_base_cs_url.portal.config.login import Mode


def choose_mode(mode: Mode, user_agent: str | None, patterns: Sequence[re.Pattern[str]]) -> Mode:
    """``redirect`` or ``proxy``: ``auto`` proxies User-Agents matching ``patterns``."""
    if mode is not Mode.AUTO:
        return mode
    if user_agent and any(p.search(user_agent) for p in patterns):
        return Mode.PROXY
    return Mode.REDIRECT
