"""Startup never waits long for a homeserver: the admin tokens of those that answer are
checked before the portal serves (a refused one stops it), one that does not answer is
asked again in the background while the portal serves, and refusing later still stops it.
A reload checks them again, in the background: a refused one is a warning and a gauge."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from twisted.internet import defer

from synapse_base_cs_url.portal.client_paths import WHOAMI_PATH
from synapse_base_cs_url.portal.directory.admin_tokens import RETRY_DELAY, STARTUP_WAIT
from synapse_base_cs_url.portal.process import StartupError
from tests.harness.requests import InMemoryPortal, json_answer, portal_config

ADMIN = b"/_synapse/admin/v2/users/%40portal%3Aone.example"


def config_with_tokens(tmp_path: Path) -> dict[str, Any]:
    raw = portal_config()
    for name in ("hs1", "hs2"):
        token = tmp_path / f"{name}.token"
        token.write_text(f"syt_{name}_token")
        token.chmod(0o600)
        raw["homeservers"][name]["admin_token_file"] = str(token)
    return raw


def portal_with_tokens(tmp_path: Path) -> InMemoryPortal:
    portal = InMemoryPortal(config_with_tokens(tmp_path))
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


OK_GAUGE = "synapse_base_cs_url_portal_admin_token_ok"


def test_a_token_refused_after_a_reload_is_a_warning_and_a_gauge_not_a_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    portal = portal_with_tokens(tmp_path)
    portal.hs("hs2").on(b"GET", WHOAMI_PATH, json_answer(200, {"user_id": "@portal:two.example"}))
    portal.hs("hs2").on(
        b"GET", b"/_synapse/admin/v2/users/%40portal%3Atwo.example", json_answer(200, {})
    )
    d, fatal = started(portal)
    assert d.called and d.result is None
    assert portal.metric(OK_GAUGE, homeserver="hs2") == 1
    # The token is revoked on hs2, then the portal reloads.
    portal.hs("hs2").on(b"GET", WHOAMI_PATH, json_answer(401, {"errcode": "M_UNKNOWN_TOKEN"}))
    path = tmp_path / "portal.yaml"
    path.write_text(yaml.safe_dump(config_with_tokens(tmp_path)))
    assert portal.process.reload(str(path))
    portal.homeservers.pump()
    assert fatal == []
    assert portal.process.port is not None  # still serving
    assert portal.metric(OK_GAUGE, homeserver="hs2") == 0
    assert portal.metric(OK_GAUGE, homeserver="hs1") == 1
    assert (
        "reload: homeservers.hs2.admin_token_file: the token is refused (whoami answered 401); "
        "its account lookups answer 503 until the token is replaced"
    ) in caplog.text
    assert "syt_hs2_token" not in caplog.text
