"""Proxy mode: the login answer relayed from the homeserver, with the homeserver's
``base_url`` added where the homeserver did not say where the client goes next (the headers
each way are the upstream client's: ``upstream/headers.py``)."""

from __future__ import annotations

import json
from typing import Any

from synapse_base_cs_url.core.json_dict import json_object
from synapse_base_cs_url.core.login_response import with_base_url


def amend_login_body(status: int, body: bytes, base_url: str) -> bytes:
    """Add ``base_cs_url`` / ``well_known`` to a successful login that lacks them.

    What the homeserver already says wins (a homeserver running the module may compute a
    per-user URL): if it sent one of the two, the other gets the same value; if neither, both
    get ``base_url``. Anything that is not a successful JSON login passes through byte for
    byte, and so does a login that already has both.
    """
    if status != 200:
        return body
    parsed = json_object(body)
    if parsed is None or "user_id" not in parsed:
        return body
    existing_base = _url_or_none(parsed.get("base_cs_url"))
    existing_well_known = _url_or_none(_well_known_base_url(parsed))
    if existing_base and existing_well_known:
        return body
    url = existing_base or existing_well_known or base_url
    amended = with_base_url(parsed, url, set_well_known=existing_well_known is None)
    return json.dumps(amended).encode()


def _url_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _well_known_base_url(body: dict[str, Any]) -> object:
    well_known = body.get("well_known")
    homeserver = well_known.get("m.homeserver") if isinstance(well_known, dict) else None
    return homeserver.get("base_url") if isinstance(homeserver, dict) else None
