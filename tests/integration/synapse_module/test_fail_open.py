"""A fault in the module never breaks a login, and is logged with its traceback."""

from __future__ import annotations

import pytest

from tests.harness.constants import PASSWORD
from tests.harness.synapse import StartSynapse, module_entry

pytestmark = pytest.mark.integration


def test_fault_in_url_computation_sends_synapse_response(start_synapse: StartSynapse) -> None:
    hs = start_synapse(
        "faulty.test",
        modules=[
            module_entry(base_cs_url="https://cs.example.com"),
            {
                "module": "tests.in_synapse.fault_injection.BreakUrlComputation",
                "config": {},
            },
        ],
        extra_config={"public_baseurl": "https://public.example.com/"},
    )
    hs.register_user("alice", PASSWORD)
    result = hs.password_login("alice", PASSWORD)
    assert result.status == 200, result
    body = result.json()
    # Synapse's own response, untouched.
    assert "base_cs_url" not in body
    assert body["well_known"] == {"m.homeserver": {"base_url": "https://public.example.com/"}}
    assert set(body) == {"user_id", "access_token", "home_server", "device_id", "well_known"}

    log = hs.log_path.read_text()
    assert "could not add base_cs_url to a login response" in log
    assert "Traceback" in log
    assert "RuntimeError: injected fault in URL computation" in log
    # Secrets never reach the log.
    assert PASSWORD not in log
    assert body["access_token"] not in log
    hs.stop()
