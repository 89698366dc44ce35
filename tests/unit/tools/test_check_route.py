"""``check --user`` when the portal answers a login itself instead of redirecting it: the
portal's own status, errcode and words, as a failure (not a guess that it proxies)."""

from __future__ import annotations

from tests.harness.cli import run_tool
from tests.harness.fake_servers import StaticMatrixServer

PORTAL_INFO = "/_synapse_base_cs_url/portal"
LOGIN = "/_matrix/client/v3/login"
HELD_TWICE = (
    "This login is not possible right now (the portal cannot tell which homeserver holds "
    "this account); try again shortly"
)


def test_the_portals_own_answer_is_reported() -> None:
    portal = StaticMatrixServer(
        more={PORTAL_INFO: {"portal": "synapse-base-cs-url", "mode": "redirect"}},
        posts={LOGIN: (503, {"errcode": "M_UNAVAILABLE", "error": HELD_TWICE})},
    )
    try:
        ran = run_tool("check", portal.url, "--user", "bob")
    finally:
        portal.close()
    assert ran.status == 1, ran.out
    assert f"✗ route: the portal answered HTTP 503 M_UNAVAILABLE: {HELD_TWICE}" in ran.out
    assert "proxies this login" not in ran.out


def test_a_user_given_to_check_a_homeserver_without_a_password_is_said_to_be_unchecked() -> None:
    homeserver = StaticMatrixServer()
    try:
        ran = run_tool("check", homeserver.url, "--user", "bob")
    finally:
        homeserver.close()
    assert ran.status == 0, ran.out
    assert "! route: a homeserver, not a portal: nothing routes bob here" in ran.out
