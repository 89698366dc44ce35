"""``well_known: true/false``, with and without Synapse's ``public_baseurl``."""

from __future__ import annotations

from typing import Any

import pytest

from synapse_base_cs_url._dev.throwaway_synapse import JsonDict
from tests.harness.constants import PASSWORD
from tests.harness.synapse import StartSynapse, module_entry

pytestmark = pytest.mark.integration

PUBLIC = {"public_baseurl": "https://public.example.com/"}

# (module config, extra Synapse config, expected base_cs_url, expected well_known or None)
CASES: dict[str, tuple[JsonDict, JsonDict, str, Any]] = {
    "default url from public_baseurl, well_known replaced": (
        {},
        PUBLIC,
        "https://public.example.com",
        {"m.homeserver": {"base_url": "https://public.example.com"}},
    ),
    "configured url, no public_baseurl: well_known created": (
        {"base_cs_url": "https://cs.example.com"},
        {},
        "https://cs.example.com",
        {"m.homeserver": {"base_url": "https://cs.example.com"}},
    ),
    "no url, no public_baseurl: Synapse's default https://server_name": (
        {},
        {},
        "https://wk.test",
        {"m.homeserver": {"base_url": "https://wk.test"}},
    ),
    "well_known false keeps Synapse's well_known": (
        {"base_cs_url": "https://cs.example.com", "well_known": False},
        PUBLIC,
        "https://cs.example.com",
        {"m.homeserver": {"base_url": "https://public.example.com/"}},
    ),
    "well_known false without public_baseurl: none sent": (
        {"base_cs_url": "https://cs.example.com", "well_known": False},
        {},
        "https://cs.example.com",
        None,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_well_known(start_synapse: StartSynapse, case: str) -> None:
    module_config, synapse_config, expected_url, expected_well_known = CASES[case]
    hs = start_synapse(
        "wk.test", modules=[module_entry(**module_config)], extra_config=synapse_config
    )
    hs.register_user("alice", PASSWORD)
    result = hs.password_login("alice", PASSWORD)
    assert result.status == 200, result
    body = result.json()
    assert body["base_cs_url"] == expected_url
    assert body.get("well_known") == expected_well_known
    hs.stop()
