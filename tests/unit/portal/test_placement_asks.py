"""A homeserver's module asking the portal before an account or an address is created: only
with its own placement secret, answered from the directory (asked of every other homeserver's
module, the name in the body) and the portal's reservations, one homeserver told yes per
name."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from synapse_base_cs_url.core.placement_protocol import ASK_PATH, HOLDS_PATH
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.identifier import LOCALPART, Identifier
from tests.harness.requests import HttpMessage, InMemoryPortal, json_answer, portal_config

SECRETS = {"hs1": "s1-" + "a" * 30, "hs2": "s2-" + "b" * 30}
ASK = ASK_PATH.encode()


ROUTES = [
    {"name": "mail", "match": {"address": r".*@two\.example"}, "homeserver": "hs2"},
    {"name": "names", "match": {"localpart": "two-.*"}, "homeserver": "hs2"},
]


def deployment(tmp_path: Path, holders: dict[str, set[str]], **directory: Any) -> InMemoryPortal:
    """Two homeservers with the module: ``holders`` maps each to the names and addresses it
    holds (its module's answers)."""
    raw = portal_config(routes=ROUTES)
    for name, secret in SECRETS.items():
        path = tmp_path / f"{name}.secret"
        path.write_text(secret + "\n")
        raw["homeservers"][name]["placement_secret_file"] = str(path)
    if directory:
        raw["directory"] = directory
    portal = InMemoryPortal(raw)
    for name in SECRETS:
        portal.hs(name).handler = module_answering(holders.get(name, set()))
    return portal


def module_answering(held: set[str]) -> Any:
    def answer(request: HttpMessage) -> bytes | None:
        if request.path != HOLDS_PATH.encode():
            return None
        body = json.loads(request.body)
        return json_answer(200, {"holds": (body.get("localpart") or body.get("address")) in held})

    return answer


def ask(portal: InMemoryPortal, homeserver: str | None, body: object) -> Any:
    headers = [(b"Authorization", f"Bearer {SECRETS[homeserver]}".encode())] if homeserver else []
    return portal.request(b"POST", ASK, json.dumps(body).encode(), headers=headers)


def test_a_name_held_on_another_homeserver_is_refused(tmp_path: Path) -> None:
    portal = deployment(tmp_path, {"hs1": {"alice"}})
    answer = ask(portal, "hs2", {"localpart": "Alice"})
    assert answer.code == 200, answer.body
    assert answer.json()["allowed"] is False
    assert answer.json()["errcode"] == errors.USER_IN_USE
    # Its own homeserver may (Synapse refuses a duplicate of its own itself).
    assert ask(portal, "hs1", {"localpart": "alice"}).json() == {"allowed": True}
    assert portal.metric(
        "synapse_base_cs_url_portal_placement_asks_total",
        homeserver="hs2",
        kind="name",
        outcome="refused",
    )


def test_the_directory_asks_the_other_modules_with_the_name_in_the_body(tmp_path: Path) -> None:
    portal = deployment(tmp_path, {})
    ask(portal, "hs1", {"medium": "email", "address": "Bob@Example.ORG"})
    ask(portal, "hs2", {"medium": "email", "address": "Bob@Example.ORG"})
    for name, secret in SECRETS.items():
        (lookup,) = [r for r in portal.hs(name).requests if r.path == HOLDS_PATH.encode()]
        assert lookup.method == b"POST" and b"example" not in lookup.target.lower()
        assert json.loads(lookup.body) == {"medium": "email", "address": "bob@example.org"}
        assert lookup.headers.getRawHeaders(b"authorization") == [f"Bearer {secret}".encode()]


def test_a_new_name_is_reserved_for_the_first_homeserver_that_asks(tmp_path: Path) -> None:
    portal = deployment(tmp_path, {})
    assert ask(portal, "hs1", {"localpart": "newbie"}).json() == {"allowed": True}
    refused = ask(portal, "hs2", {"localpart": "NEWBIE"}).json()
    assert refused["allowed"] is False and refused["errcode"] == errors.USER_IN_USE
    # The same homeserver asking again (a later step) still may.
    assert ask(portal, "hs1", {"localpart": "newbie"}).json() == {"allowed": True}
    # A reservation never completed expires: the name is free again.
    portal.advance(601)
    assert ask(portal, "hs2", {"localpart": "newbie"}).json() == {"allowed": True}


def test_an_address_reserved_or_held_elsewhere_is_refused(tmp_path: Path) -> None:
    portal = deployment(tmp_path, {"hs1": {"held@example.org"}})
    held = ask(portal, "hs2", {"medium": "email", "address": "held@example.org"}).json()
    assert held["allowed"] is False and held["errcode"] == errors.THREEPID_IN_USE
    assert ask(portal, "hs2", {"medium": "msisdn", "address": "+33612345678"}).json()["allowed"]
    taken = ask(portal, "hs1", {"medium": "msisdn", "address": "33612345678"}).json()
    assert taken["allowed"] is False


@pytest.mark.parametrize(
    "headers",
    [[], [(b"Authorization", b"Bearer not-the-secret")], [(b"Authorization", b"Basic x")]],
)
def test_an_ask_without_a_homeservers_secret_is_refused(
    tmp_path: Path, headers: list[tuple[bytes, bytes]]
) -> None:
    portal = deployment(tmp_path, {})
    answer = portal.request(b"POST", ASK, b'{"localpart": "x"}', headers=headers)
    assert answer.code == 401 and answer.json()["errcode"] == errors.UNKNOWN_TOKEN
    assert not any(portal.hs(name).requests for name in SECRETS)  # nothing asked, reserved


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (b"not json", errors.NOT_JSON),
        (b"[]", errors.BAD_JSON),
        (b"{}", errors.BAD_JSON),
        (b'{"localpart": ""}', errors.BAD_JSON),
        (b'{"medium": "carrier-pigeon", "address": "x"}', errors.BAD_JSON),
        (b'{"medium": "email", "address": "no-at-sign"}', errors.INVALID_PARAM),
    ],
)
def test_a_malformed_ask_is_a_matrix_error(tmp_path: Path, body: bytes, errcode: str) -> None:
    portal = deployment(tmp_path, {})
    headers = [(b"Authorization", f"Bearer {SECRETS['hs1']}".encode())]
    answer = portal.request(b"POST", ASK, body, headers=headers)
    assert answer.code == 400 and answer.json()["errcode"] == errcode


def test_a_homeserver_that_cannot_say_makes_the_ask_unavailable(tmp_path: Path) -> None:
    portal = deployment(tmp_path, {})
    portal.hs("hs2").handler = lambda request: json_answer(500, {"errcode": "M_UNKNOWN"})
    answer = ask(portal, "hs1", {"localpart": "maybe"})
    assert answer.code == 503 and answer.json()["errcode"] == errors.UNAVAILABLE
    assert answer.headers.getRawHeaders(b"retry-after")
    # Nothing was reserved: once hs2 answers, the name is free.
    portal.hs("hs2").handler = module_answering(set())
    assert ask(portal, "hs2", {"localpart": "maybe"}).json() == {"allowed": True}


def test_asks_are_not_held_to_the_per_client_lookup_limits(tmp_path: Path) -> None:
    portal = deployment(tmp_path, {}, burst=1, per_second=0.001)
    for i in range(5):
        assert ask(portal, "hs1", {"localpart": f"name{i}"}).json() == {"allowed": True}


def test_a_cached_nobody_is_asked_again_before_creating(tmp_path: Path) -> None:
    """A login just looked the name up (nobody held it); it was registered at hs1 since: an
    ask of hs2 must not take the seconds-old "nobody" for the truth."""
    portal = deployment(tmp_path, {})
    login = {"type": "m.login.password", "user": "late", "password": "pw"}
    portal.request(b"POST", b"/_matrix/client/v3/login", json.dumps(login).encode())
    portal.hs("hs1").handler = module_answering({"late"})
    refused = ask(portal, "hs2", {"localpart": "late"}).json()
    assert refused["allowed"] is False


def test_the_asking_homeserver_is_not_asked(tmp_path: Path) -> None:
    """It refuses its own duplicates, and is busy with the registration that asks: only the
    others are. What they said is no answer about it, so a login asks everyone again."""
    portal = deployment(tmp_path, {})
    assert ask(portal, "hs1", {"localpart": "fresh"}).json() == {"allowed": True}
    assert portal.hs("hs1").paths() == []
    assert portal.hs("hs2").paths() == [HOLDS_PATH.encode()]
    login = {"type": "m.login.password", "user": "fresh", "password": "pw"}
    portal.request(b"POST", b"/_matrix/client/v3/login", json.dumps(login).encode())
    assert portal.hs("hs1").paths().count(HOLDS_PATH.encode()) == 1


def test_an_address_its_asker_holds_is_refused_only_elsewhere(tmp_path: Path) -> None:
    """hs1 holds the address: hs2 is refused (hs1 is asked, nothing is reserved), hs1 is
    not (it is not asked: a duplicate of its own is Synapse's to refuse)."""
    portal = deployment(tmp_path, {"hs1": {"kept@one.example"}})
    mail = {"medium": "email", "address": "kept@one.example"}
    assert ask(portal, "hs2", mail).json()["errcode"] == errors.THREEPID_IN_USE
    assert ask(portal, "hs1", mail).json() == {"allowed": True}
    assert portal.hs("hs1").paths() == [HOLDS_PATH.encode()]  # by hs2's ask only


def test_reservations_and_refusals_are_logged_by_tag(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    portal = deployment(tmp_path, {})
    caplog.set_level(logging.INFO, "synapse_base_cs_url.portal")
    ask(portal, "hs1", {"localpart": "logged"})
    ask(portal, "hs1", {"localpart": "logged"})  # its own already: nothing changes
    ask(portal, "hs2", {"localpart": "logged"})
    lines = [r.getMessage() for r in caplog.records if "placement ask" in r.getMessage()]
    tag = Identifier(LOCALPART, "logged").tag
    assert lines == [
        f"placement ask by hs1 for {tag}: reserved",
        f"placement ask by hs2 for {tag}: refused",
    ]
    assert "logged" not in caplog.text.replace(tag, "")


def test_several_processes_must_share_their_reservations(tmp_path: Path) -> None:
    raw = portal_config(workers=2)
    secret = tmp_path / "hs1.secret"
    secret.write_text(SECRETS["hs1"])
    raw["homeservers"]["hs1"]["placement_secret_file"] = str(secret)
    with pytest.raises(ValueError, match=r"^state\.backend: workers: 2 with homeservers\.hs1\."):
        PortalConfig.from_config(raw)


def test_with_follow_routes_only_where_the_routes_place_it(tmp_path: Path) -> None:
    portal = deployment(tmp_path, {})
    strict = {"localpart": "two-bob", "follow_routes": True}
    refused = ask(portal, "hs1", strict).json()
    assert refused["allowed"] is False and refused["errcode"] == errors.FORBIDDEN
    assert "belongs on another homeserver" in refused["error"]
    assert ask(portal, "hs2", strict).json() == {"allowed": True}
    mail = {"medium": "email", "address": "carol@two.example", "follow_routes": True}
    assert ask(portal, "hs1", mail).json()["errcode"] == errors.FORBIDDEN
    # Without it, uniqueness only: the first homeserver to ask gets a free name.
    assert ask(portal, "hs1", {"localpart": "two-dave"}).json() == {"allowed": True}


def test_two_homeservers_may_not_share_a_secret(tmp_path: Path) -> None:
    raw = portal_config()
    shared = tmp_path / "shared.secret"
    shared.write_text(SECRETS["hs1"])
    for name in ("hs1", "hs2"):
        raw["homeservers"][name]["placement_secret_file"] = str(shared)
    with pytest.raises(ValueError, match=r"^homeservers\.hs2\.placement_secret_file: holds the"):
        PortalConfig.from_config(raw)


def test_ingress_points_of_one_homeserver_are_one_for_placement(tmp_path: Path) -> None:
    """The portal placed a registration on hs1b (an ingress point of hs1's server name);
    hs1's module asks: that is its own placement, not a name reserved elsewhere."""
    raw = portal_config()
    raw["homeservers"]["hs1b"] = {
        **raw["homeservers"]["hs1"],
        "base_url": "https://hs1b.example",
        "proxy_url": "http://hs1b.internal:8003",
    }
    raw["routes"] = [{"name": "b", "match": {"localpart": "b-.*"}, "homeserver": "hs1b"}]
    for name, secret in SECRETS.items():
        path = tmp_path / f"{name}.secret"
        path.write_text(secret)
        raw["homeservers"][name]["placement_secret_file"] = str(path)
    # hs1b, without the module's secret, is asked by admin token (as hs1: one server name).
    token = tmp_path / "hs1b.token"
    token.write_text("syt_aHMxYg_admintoken_0abcde")
    raw["homeservers"]["hs1b"]["admin_token_file"] = str(token)
    portal = InMemoryPortal(raw)
    for name in ("hs1", "hs2", "hs1b"):
        portal.hs(name).handler = module_answering(set())
    register = json.dumps({"username": "b-carol", "password": "pw"}).encode()
    step = portal.request(b"POST", b"/_matrix/client/v3/register", register)
    assert step.code == 307 and b"hs1b.example" in step.headers.getRawHeaders(b"location")[0]
    assert ask(portal, "hs1", {"localpart": "b-carol"}).json() == {"allowed": True}
    assert ask(portal, "hs2", {"localpart": "b-carol"}).json()["allowed"] is False
