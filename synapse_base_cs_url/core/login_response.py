"""How a chosen base URL is written into a login (or registration) response body.

Pure: takes Synapse's response dict and returns a new one, never mutating the input (Synapse
may share the ``well_known`` dict between responses, and a half-amended dict must never go
out if anything fails).
"""

from __future__ import annotations

from synapse_base_cs_url.core.json_dict import JsonDict


def with_base_url(response: JsonDict, base_url: str, *, set_well_known: bool) -> JsonDict:
    """Return ``response`` plus ``base_cs_url`` and, if asked, a consistent ``well_known``.

    Keys already in ``well_known`` (``m.identity_server``, ``extra_well_known_client_content``)
    and in ``well_known["m.homeserver"]`` are kept; only ``base_url`` is replaced.
    """
    amended = dict(response)
    amended["base_cs_url"] = base_url
    if set_well_known:
        well_known = response.get("well_known")
        well_known = dict(well_known) if isinstance(well_known, dict) else {}
        homeserver = well_known.get("m.homeserver")
        homeserver = dict(homeserver) if isinstance(homeserver, dict) else {}
        homeserver["base_url"] = base_url
        well_known["m.homeserver"] = homeserver
        amended["well_known"] = well_known
    return amended
