"""``/versions`` and ``GET /login`` (``Discovery``) through the real site and upstream client,
two homeservers played in memory: the combined answers, the cache, homeservers that fail,
and concurrent asks sharing one fetch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.harness.requests import InMemoryPortal, answer, json_answer, portal_config

VERSIONS = b"/_matrix/client/versions"
LOGIN = b"/_matrix/client/v3/login"
TTL = 60

HS1_VERSIONS = {
    "versions": ["r0.6.1", "v1.1", "v1.2", "v1.3"],
    "unstable_features": {"org.a": True, "org.b": True, "org.c": False, "org.only1": True},
}
HS2_VERSIONS = {
    "versions": ["v1.3", "v1.1", "v1.4"],
    "unstable_features": {"org.a": True, "org.b": False, "org.c": True},
}
HS1_FLOWS = {
    "flows": [
        {"type": "m.login.password"},
        {"type": "m.login.sso", "identity_providers": [{"id": "oidc-a", "name": "A"}]},
        {"type": "m.login.token"},
        {"type": "m.login.application_service"},
    ]
}
HS2_FLOWS = {"flows": [{"type": "m.login.jwt"}, {"type": "m.login.password", "extra": 2}]}


def discovery(**overrides: Any) -> InMemoryPortal:
    raw = portal_config(discovery_cache_ttl=TTL)
    raw.update(overrides)
    portal = InMemoryPortal(raw)
    portal.hs("hs1").on(b"GET", VERSIONS, json_answer(200, HS1_VERSIONS))
    portal.hs("hs2").on(b"GET", VERSIONS, json_answer(200, HS2_VERSIONS))
    portal.hs("hs1").on(b"GET", LOGIN, json_answer(200, HS1_FLOWS))
    portal.hs("hs2").on(b"GET", LOGIN, json_answer(200, HS2_FLOWS))
    return portal


def asked(portal: InMemoryPortal) -> list[int]:
    return [len(hs.requests) for hs in portal.homeservers]


def test_versions_are_those_every_homeserver_lists() -> None:
    portal = discovery()
    channel = portal.request(b"GET", VERSIONS)
    assert channel.code == 200
    assert channel.header(b"Content-Type") == b"application/json"
    assert channel.json() == {
        "versions": ["v1.1", "v1.3"],  # in the default homeserver's order
        "unstable_features": {"org.a": True, "org.b": False, "org.c": False},
    }
    assert [hs.paths() for hs in portal.homeservers] == [[VERSIONS], [VERSIONS]]


def test_login_flows_are_those_every_homeserver_offers_and_sso_from_the_sso_homeserver() -> None:
    portal = discovery()
    channel = portal.request(b"GET", LOGIN)
    assert channel.code == 200
    assert channel.json() == {
        "flows": [
            {"type": "m.login.password"},  # the default homeserver's flow object
            {"type": "m.login.sso", "identity_providers": [{"id": "oidc-a", "name": "A"}]},
            {"type": "m.login.token"},
        ]
    }


def test_several_processes_without_an_sso_section_offer_no_sso() -> None:
    portal = discovery(workers=2)
    assert portal.request(b"GET", LOGIN).json() == {"flows": [{"type": "m.login.password"}]}


def test_answers_are_cached_for_discovery_cache_ttl() -> None:
    portal = discovery()
    first = portal.request(b"GET", VERSIONS).body
    assert asked(portal) == [1, 1]
    portal.advance(TTL - 1)
    again = portal.request(b"GET", VERSIONS)
    assert again.body == first
    assert asked(portal) == [1, 1]  # nobody was asked
    # Another path is another document.
    portal.request(b"GET", LOGIN)
    assert asked(portal) == [2, 2]
    portal.advance(1.5)
    portal.hs("hs2").on(b"GET", VERSIONS, json_answer(200, {"versions": ["v1.1"]}))
    later = portal.request(b"GET", VERSIONS)
    assert asked(portal) == [3, 3]  # expired: asked again, and the new answer served
    assert later.json() == {"versions": ["v1.1"], "unstable_features": {}}


def test_a_cache_ttl_of_zero_asks_every_time() -> None:
    portal = discovery(discovery_cache_ttl=0)
    portal.request(b"GET", VERSIONS)
    portal.request(b"GET", VERSIONS)
    assert asked(portal) == [2, 2]


@pytest.mark.parametrize("failure", ["refused", "http-500", "not-json", "not-an-object"])
def test_a_homeserver_that_fails_is_left_out(failure: str) -> None:
    portal = discovery()
    hs2 = portal.hs("hs2")
    if failure == "refused":
        hs2.refusing = True
    else:
        hs2.on(
            b"GET",
            VERSIONS,
            {
                "http-500": json_answer(500, {"errcode": "M_UNKNOWN"}),
                "not-json": answer(200, b"<html>", [(b"Content-Type", b"text/html")]),
                "not-an-object": json_answer(200, ["v1.1"]),
            }[failure],
        )
    channel = portal.request(b"GET", VERSIONS)
    portal.advance(1)  # a refused connection is reported on the endpoint's next turn
    assert channel.code == 200
    assert channel.json() == {
        "versions": HS1_VERSIONS["versions"],
        "unstable_features": HS1_VERSIONS["unstable_features"],
    }


def test_when_every_homeserver_fails_it_is_502_and_not_cached() -> None:
    portal = discovery()
    portal.hs("hs1").refusing = True
    portal.hs("hs2").on(b"GET", VERSIONS, json_answer(503, {"errcode": "M_UNKNOWN"}))
    channel = portal.request(b"GET", VERSIONS)
    portal.advance(1)
    assert channel.code == 502
    body = channel.json()
    assert body["errcode"] == "M_UNKNOWN"
    assert body["error"] == (
        "No homeserver answered GET /_matrix/client/versions: Homeserver 'hs1' is unreachable: "
        "ConnectionRefusedError; Homeserver 'hs2' sent "
        "an invalid answer: HTTP 503 for /_matrix/client/versions"
    )
    # Failures are not kept: the next ask asks again, and is answered.
    portal.hs("hs1").refusing = False
    portal.hs("hs2").on(b"GET", VERSIONS, json_answer(200, HS2_VERSIONS))
    assert portal.request(b"GET", VERSIONS).code == 200


def test_when_every_homeserver_is_too_slow_it_is_504() -> None:
    portal = discovery(timeouts={"connect": 2, "total": 4})
    for hs in portal.homeservers:
        hs.canned.clear()  # accepted, never answered
    channel = portal.request(b"GET", VERSIONS)
    portal.advance(3.9)
    assert channel.responses == []
    portal.advance(0.2)
    assert channel.code == 504
    assert channel.json()["error"].startswith("No homeserver answered GET /_matrix/client/versions")
    assert all(hs.connection.released for hs in portal.homeservers)


def test_concurrent_asks_share_one_fetch() -> None:
    portal = discovery()
    for hs in portal.homeservers:
        hs.canned.clear()  # the test answers by hand
    first = portal.request(b"GET", VERSIONS)
    second = portal.request(b"GET", VERSIONS)
    assert asked(portal) == [1, 1]
    portal.hs("hs1").connection.answer(json_answer(200, HS1_VERSIONS))
    assert first.responses == second.responses == []  # hs2 has not answered yet
    portal.hs("hs2").connection.answer(json_answer(200, HS2_VERSIONS))
    assert first.code == second.code == 200
    assert first.body == second.body
    assert json.loads(first.body)["versions"] == ["v1.1", "v1.3"]
    assert asked(portal) == [1, 1]
