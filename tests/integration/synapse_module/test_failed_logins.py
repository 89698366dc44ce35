"""Failed logins are exactly what Synapse answers without the module."""

from __future__ import annotations

import re

import pytest

from synapse_base_cs_url._dev.throwaway_synapse import HttpResult, SynapseProcess
from tests.harness.constants import PASSWORD

pytestmark = pytest.mark.integration

LOGIN = "/_matrix/client/v3/login"

FAILED_LOGINS: dict[str, bytes | dict[str, object]] = {
    "wrong password": {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "wrong",
    },
    "unknown user": {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "nobody"},
        "password": PASSWORD,
    },
    "bad json": b"{not json",
    "json not an object": b"[1, 2]",
    "missing type": {"identifier": {"type": "m.id.user", "user": "alice"}},
    "unknown login type": {"type": "m.login.nonsense"},
    "bad login token": {"type": "m.login.token", "token": "syl_not_a_real_token"},
    "jwt with bad signature": {"type": "org.matrix.login.jwt", "token": "a.b.c"},
    "appservice login without token": {
        "type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": "bridge_bob"},
    },
}


def compare(module: HttpResult, control: HttpResult) -> None:
    assert module.status == control.status
    assert module.status != 200
    assert module.headers.get("Content-Type") == control.headers.get("Content-Type")
    assert module.body == control.body


@pytest.mark.parametrize("case", list(FAILED_LOGINS))
def test_failed_login_matches_synapse_without_module(
    module_hs: SynapseProcess, control_hs: SynapseProcess, case: str
) -> None:
    body = FAILED_LOGINS[case]
    compare(module_hs.post(LOGIN, body), control_hs.post(LOGIN, body))


def _without_retry_delay(body: bytes) -> bytes:
    # The only part of a 429 that depends on timing, not on the module.
    return re.sub(rb'"retry_after_ms":\d+', b'"retry_after_ms":N', body)


def test_rate_limited_login_matches_synapse_without_module(
    module_hs: SynapseProcess, control_hs: SynapseProcess
) -> None:
    """The twins allow 3 failed attempts per account; the 4th and later are 429s."""
    answers = []
    for hs in (module_hs, control_hs):
        hs.register_user("ratelimited", PASSWORD)
        results = [hs.password_login("ratelimited", "wrong") for _ in range(5)]
        # Even the right password is refused while limited.
        results.append(hs.password_login("ratelimited", PASSWORD))
        answers.append(results)
    for module, control in zip(*answers, strict=True):
        assert module.status == control.status
        assert _without_retry_delay(module.body) == _without_retry_delay(control.body)
    assert answers[0][-1].status == 429
    assert b"base_cs_url" not in answers[0][-1].body
