"""A hung homeserver costs the others nothing once it has failed a few times in a row: it is
marked down (metric, portal info, one log line), lookups stop waiting for it (counting it
as "could not say", never a guess), and a probe marks it up within seconds of recovery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synapse_base_cs_url.core.placement_protocol import HOLDS_PATH
from synapse_base_cs_url.portal.config.upstream import DEFAULT_FAILURES_TO_DOWN
from synapse_base_cs_url.portal.upstream.endpoints import ATTEMPT_DELAY
from synapse_base_cs_url.portal.upstream.health import JITTER
from tests.harness.requests import HttpMessage, InMemoryPortal, json_answer, portal_config

LOGIN = b"/_matrix/client/v3/login"
PROBE_INTERVAL = 2.0
TIMEOUT = 5.0  # directory.timeout


def module(held: set[str]) -> Any:
    def answer(request: HttpMessage) -> bytes | None:
        if request.path == b"/health":
            return json_answer(200, {})
        if request.path == HOLDS_PATH.encode():
            return json_answer(200, {"holds": json.loads(request.body)["localpart"] in held})
        return None

    return answer


def deployment(tmp_path: Path) -> InMemoryPortal:
    raw = portal_config(directory={"timeout": TIMEOUT, "burst": 100})
    for name in ("hs1", "hs2"):
        secret = tmp_path / f"{name}.secret"
        secret.write_text(f"{name}-secret-0123456789abcdef")
        raw["homeservers"][name]["placement_secret_file"] = str(secret)
    portal = InMemoryPortal(raw)
    portal.hs("hs1").handler = module({f"user{i}" for i in range(10)})
    return portal  # hs2 accepts connections and never answers


def login(portal: InMemoryPortal, user: str) -> Any:
    body = {"type": "m.login.password", "user": user, "password": "pw"}
    return portal.request(b"POST", LOGIN, json.dumps(body).encode())


def up(portal: InMemoryPortal, name: str) -> float:
    return portal.metric("synapse_base_cs_url_portal_homeserver_up", homeserver=name)


def down_in_info(portal: InMemoryPortal) -> list[str]:
    info = portal.request(b"GET", b"/_synapse_base_cs_url/portal").json()
    return list(info["homeservers_down"])


def test_a_hung_homeserver_is_not_waited_for_after_its_first_failures(tmp_path: Path) -> None:
    portal = deployment(tmp_path)
    assert up(portal, "hs2") == 1
    for i in range(DEFAULT_FAILURES_TO_DOWN):
        channel = login(portal, f"user{i}")
        assert not channel.responses  # waiting for hs2
        portal.advance(TIMEOUT)
        assert channel.code == 307  # found on hs1: that counts even though hs2 said nothing
    assert up(portal, "hs2") == 0 and down_in_info(portal) == ["hs2"]
    # From now on, nothing waits for hs2: answered at once.
    assert login(portal, "user5").code == 307
    # A name nobody else holds: hs2 might hold it, so never a guess.
    unknown = login(portal, "bob")
    assert unknown.code == 503 and unknown.json()["errcode"] == "M_UNAVAILABLE"
    assert unknown.headers.getRawHeaders(b"retry-after")


def test_a_probe_marks_it_up_within_seconds_of_recovery(tmp_path: Path) -> None:
    portal = deployment(tmp_path)
    for i in range(DEFAULT_FAILURES_TO_DOWN):
        login(portal, f"user{i}")
        portal.advance(TIMEOUT)
    assert up(portal, "hs2") == 0
    portal.hs("hs2").handler = module({"bob"})  # resumes
    portal.advance(PROBE_INTERVAL * (1 + JITTER))
    assert up(portal, "hs2") == 1 and down_in_info(portal) == []
    assert login(portal, "bob").headers.getRawHeaders(b"location") == [
        b"https://hs2.example/_matrix/client/v3/login"
    ]


def test_a_refusing_homeserver_is_marked_down_too(tmp_path: Path) -> None:
    portal = deployment(tmp_path)
    portal.hs("hs2").refusing = True
    for i in range(DEFAULT_FAILURES_TO_DOWN):
        channel = login(portal, f"user{i}")
        portal.advance(ATTEMPT_DELAY)  # a name's last address refused: known within this
        assert channel.code == 307
    assert up(portal, "hs2") == 0
    attempts = len(portal.hs("hs2").attempts)
    assert login(portal, "user7").code == 307
    assert len(portal.hs("hs2").attempts) == attempts  # not even a connection attempt
