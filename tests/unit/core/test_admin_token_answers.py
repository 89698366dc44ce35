"""One meaning for each answer to an admin token check, for the portal and ``check`` alike:
401/403 a refusal, a success an admin's token, anything else no answer (asked again)."""

from __future__ import annotations

import pytest

from synapse_base_cs_url.core.admin_token_answers import after_admin_api, after_whoami

ADMIN = "@portal:hs1.example"


@pytest.mark.parametrize(
    ("status", "user_id", "ok"),
    [(401, None, False), (403, None, False), (404, None, None), (502, None, None), (200, 7, None)],
)
def test_whoami_alone_decides_a_refusal_or_no_answer(
    status: int, user_id: object, ok: bool | None
) -> None:
    verdict = after_whoami(status, user_id)
    assert not isinstance(verdict, str) and verdict.ok is ok
    assert str(status) in verdict.detail


def test_a_user_named_by_whoami_is_asked_about_next() -> None:
    assert after_whoami(200, ADMIN) == ADMIN


@pytest.mark.parametrize(("status", "ok"), [(200, True), (403, False), (401, False), (500, None)])
def test_the_admin_api_decides_the_rest(status: int, ok: bool | None) -> None:
    verdict = after_admin_api(ADMIN, status)
    assert verdict.ok is ok
    assert ADMIN in verdict.detail
