"""Reading a portal's Prometheus page in tests."""

from __future__ import annotations

import re

import requests

CLIENT_API = "synapse_base_cs_url_portal_client_api_requests_total"
DECISIONS = "synapse_base_cs_url_portal_route_decisions_total"
RESOLUTIONS = "synapse_base_cs_url_portal_token_resolutions_total"


def total(base_url: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 if none)."""
    text = requests.get(base_url + "/metrics", timeout=30).text
    found = 0.0
    for sample in re.finditer(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$", text, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', sample.group(1) or ""))
        if all(have.get(key) == value for key, value in labels.items()):
            found += float(sample.group(2))
    return found
