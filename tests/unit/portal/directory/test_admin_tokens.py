"""Startup never waits long for a homeserver: the admin tokens of those that answer are
checked before the portal serves (a refused one stops it), one that does not answer is
asked again in the background while the portal serves, and refusing later still stops it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer

from synapse_base_cs_url.portal.client_paths import WHOAMI_PATH
from synapse_base_cs_url.portal.directory.admin_tokens import RETRY_DELAY, STARTUP_WAIT
from synapse_base_cs_url.portal.process import StartupError
from tests.harness.requests import InMemoryPortal, json_answer, portal_config

ADMIN = b"/_synapse/admin/v2/users/%40portal%3Aone.example"


def portal_with_tokens(tmp_path: Path) -> InMemoryPortal:
    raw = portal_config()
    for name in ("hs1", "hs2"):
        token = tmp_path / f"{name}.token"
        token.write_text(f"syt_{name}_token")
        raw["homeservers"][name]["admin_token_file"] = str(token)
    portal = InMemoryPortal(raw)
    portal.hs("hs1").on(b"GET", WHOAMI_PATH, json_answer(200, {"user_id": "@portal:one.example"}))
    portal.hs("hs1").on(b"GET", ADMIN, json_answer(200, {"name": "@portal:one.example"}))
    return portal


def started(portal: InMemoryPortal) -> tuple[defer.Deferred[Any], list[str]]:
    fatal: list[str] = []
    portal.process.on_fatal = fatal.append
    d = defer.ensureDeferred(portal.process.start())
    portal.homeservers.pump()
    return d, fatal


def test_a_hung_homeserver_does_not_hold_startup_and_is_asked_again(tmp_path: Path) -> None:
    portal = portal_with_tokens(tmp_path)  # hs2 accepts and never answers
    d, fatal = started(portal)
    assert not d.called
    portal.advance(STARTUP_WAIT)
    assert d.called and portal.process.port is not None  # serving
    # hs2 comes back, refusing the token: the portal stops, naming it.
    portal.hs("hs2").on(b"GET", WHOAMI_PATH, json_answer(401, {"errcode": "M_UNKNOWN_TOKEN"}))
    portal.advance(30)  # the hung request times out (timeouts.total); asked again
    portal.advance(RETRY_DELAY)
    assert fatal == [
        "portal cannot use the account directory: homeservers.hs2.admin_token_file: the token "
        "is refused (whoami answered 401)"
    ]


def test_a_homeserver_that_answers_at_once_still_stops_startup(tmp_path: Path) -> None:
    portal = portal_with_tokens(tmp_path)
    portal.hs("hs2").on(b"GET", WHOAMI_PATH, json_answer(401, {"errcode": "M_UNKNOWN_TOKEN"}))
    d, _ = started(portal)
    failures: list[Any] = []
    d.addErrback(failures.append)  # no waiting: everyone answered
    assert [f.type for f in failures] == [StartupError]
    assert "homeservers.hs2.admin_token_file: the token is refused" in str(failures[0].value)
    assert portal.process.port is None


def test_one_that_answers_later_with_an_admins_token_is_fine(tmp_path: Path) -> None:
    portal = portal_with_tokens(tmp_path)
    portal.hs("hs2").refusing = True  # down: no answer at all
    d, fatal = started(portal)
    portal.advance(STARTUP_WAIT)
    assert d.called and d.result is None
    portal.hs("hs2").refusing = False
    portal.hs("hs2").on(b"GET", WHOAMI_PATH, json_answer(200, {"user_id": "@portal:two.example"}))
    portal.hs("hs2").on(
        b"GET", b"/_synapse/admin/v2/users/%40portal%3Atwo.example", json_answer(200, {})
    )
    portal.advance(RETRY_DELAY)
    assert fatal == []
