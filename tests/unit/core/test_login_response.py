"""Writing the chosen URL into a login response, without touching Synapse's dict."""

from __future__ import annotations

import copy

from synapse_base_cs_url.core.login_response import with_base_url

URL = "https://cs.example.com"


def synapse_response(**extra: object) -> dict[str, object]:
    return {"user_id": "@a:hs", "access_token": "t", "device_id": "D", "home_server": "hs", **extra}


def test_adds_base_cs_url_and_creates_well_known() -> None:
    amended = with_base_url(synapse_response(), URL, set_well_known=True)
    assert amended == synapse_response(
        base_cs_url=URL, well_known={"m.homeserver": {"base_url": URL}}
    )


def test_replaces_only_base_url_and_keeps_other_well_known_content() -> None:
    well_known = {
        "m.homeserver": {"base_url": "https://public.example.com/", "org.example.x": 1},
        "m.identity_server": {"base_url": "https://id.example.com"},
        "org.example.custom": {"kept": True},
    }
    original = synapse_response(well_known=well_known)
    snapshot = copy.deepcopy(original)
    amended = with_base_url(original, URL, set_well_known=True)
    assert amended["well_known"] == {
        "m.homeserver": {"base_url": URL, "org.example.x": 1},
        "m.identity_server": {"base_url": "https://id.example.com"},
        "org.example.custom": {"kept": True},
    }
    # Synapse may share its well_known dict between responses: never mutate it.
    assert original == snapshot


def test_well_known_false_leaves_synapse_well_known_alone() -> None:
    wk = {"m.homeserver": {"base_url": "https://public.example.com/"}}
    assert with_base_url(synapse_response(well_known=wk), URL, set_well_known=False) == (
        synapse_response(well_known=wk, base_cs_url=URL)
    )
    assert "well_known" not in with_base_url(synapse_response(), URL, set_well_known=False)


def test_malformed_well_known_is_replaced() -> None:
    amended = with_base_url(synapse_response(well_known="junk"), URL, set_well_known=True)
    assert amended["well_known"] == {"m.homeserver": {"base_url": URL}}
    amended = with_base_url(
        synapse_response(well_known={"m.homeserver": None}), URL, set_well_known=True
    )
    assert amended["well_known"] == {"m.homeserver": {"base_url": URL}}
