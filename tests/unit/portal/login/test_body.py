"""Reading login bodies: JSON checks, and who the user is (incl. bare localparts)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from synapse_base_cs_url.core import LoginContext
from synapse_base_cs_url.portal.config.login import Mode
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.errors import MatrixError
from synapse_base_cs_url.portal.login.body import check_login_body
from synapse_base_cs_url.portal.login.mode import choose_mode
from synapse_base_cs_url.portal.login_routes import LoginRoutes
from synapse_base_cs_url.portal.web.json_body import parse_json_object


@pytest.mark.parametrize(
    ("raw", "errcode"),
    [
        (b"", "M_NOT_JSON"),
        (b"{", "M_NOT_JSON"),
        (b"\xff", "M_NOT_JSON"),
        (b"[" * 100_000, "M_NOT_JSON"),
        # Not UTF-8 (json.loads on bytes would decode these), as Synapse refuses them:
        ('{"type": "m.login.password"}'.encode("utf-16"), "M_NOT_JSON"),
        ('{"type": "m.login.password"}'.encode("utf-32-le"), "M_NOT_JSON"),
        (b'\xef\xbb\xbf{"type": "m.login.password"}', "M_NOT_JSON"),
        (b'{"type": "m.login.password", "n": NaN}', "M_NOT_JSON"),
        (b'{"type": "m.login.password", "n": -Infinity}', "M_NOT_JSON"),
        (b"null", "M_BAD_JSON"),
        (b'"a string"', "M_BAD_JSON"),
        (b"[]", "M_BAD_JSON"),
    ],
)
def test_parse_json_object_errors(raw: bytes, errcode: str) -> None:
    with pytest.raises(MatrixError) as info:
        parse_json_object(raw)
    assert (info.value.status, info.value.errcode) == (400, errcode)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "'type'"),
        ({"type": 5}, "'type'"),
        ({"type": "m.login.password", "password": "x"}, "needs an 'identifier'"),
        ({"type": "m.login.password", "identifier": []}, "'identifier' must be an object"),
        ({"type": "m.login.password", "identifier": {"user": "a"}}, "'identifier.type'"),
        ({"type": "m.login.password", "identifier": {"type": "m.id.user"}}, "'identifier.user'"),
        (
            {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": 5}},
            "'identifier.user'",
        ),
        (
            {"type": "m.login.password", "identifier": {"type": "m.id.thirdparty", "medium": "e"}},
            "'identifier.address'",
        ),
        (
            {"type": "m.login.password", "identifier": {"type": "m.id.phone", "country": "GB"}},
            "'identifier.phone'",
        ),
        ({"type": "m.login.password", "medium": "email"}, "needs an 'identifier'"),
        ({"type": "m.login.application_service"}, "needs an 'identifier'"),
        ({"type": "m.login.token"}, "'token'"),
        ({"type": "m.login.token", "token": 1}, "'token'"),
    ],
)
def test_missing_fields_are_bad_json(body: dict[str, Any], words: str) -> None:
    with pytest.raises(MatrixError) as info:
        check_login_body(body)
    assert (info.value.status, info.value.errcode) == (400, "M_BAD_JSON")
    assert words in info.value.message


@pytest.mark.parametrize(
    "body",
    [
        {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "a"}},
        {"type": "m.login.password", "user": "a", "password": "p"},
        {"type": "m.login.password", "medium": "email", "address": "a@b.c"},
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.phone", "country": "GB", "phone": "1"},
        },
        {"type": "m.login.password", "identifier": {"type": "org.example.custom", "x": 1}},
        {"type": "m.login.token", "token": "t"},
        {"type": "org.matrix.login.jwt", "token": "t"},
        {"type": "com.example.custom"},
    ],
)
def test_acceptable_bodies(body: dict[str, Any]) -> None:
    assert check_login_body(body) == body["type"]


@pytest.mark.parametrize(
    ("body", "server_name", "expected"),
    [
        (
            {"identifier": {"type": "m.id.user", "user": "@a:x.org"}},
            None,
            ("@a:x.org", "a", None, None),
        ),
        (
            {"identifier": {"type": "m.id.user", "user": "@a:x.org"}},
            "y.org",
            ("@a:x.org", "a", None, None),
        ),
        ({"identifier": {"type": "m.id.user", "user": "alice"}}, None, (None, "alice", None, None)),
        (
            {"identifier": {"type": "m.id.user", "user": "alice"}},
            "ex.com",
            ("@alice:ex.com", "alice", None, None),
        ),
        ({"user": "bob"}, "ex.com", ("@bob:ex.com", "bob", None, None)),
        ({"user": "@bob:x.org"}, None, ("@bob:x.org", "bob", None, None)),
        (
            {"identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "c@d.org"}},
            "ex.com",
            (None, None, "email", "c@d.org"),
        ),
        ({"medium": "email", "address": "c@d.org"}, None, (None, None, "email", "c@d.org")),
        (
            {"identifier": {"type": "m.id.phone", "country": "GB", "phone": "7700900000"}},
            None,
            (None, None, "msisdn", None),
        ),
    ],
)
def test_who_is_logging_in(
    body: dict[str, Any], server_name: str | None, expected: tuple[str | None, ...]
) -> None:
    ctx = LoginContext.from_login_body(
        {"type": "m.login.password", **body}, client_ip="10.0.0.1", server_name=server_name
    )
    assert (ctx.user_id, ctx.effective_localpart, ctx.medium, ctx.address) == expected
    assert ctx.client_ip == "10.0.0.1"
    assert ctx.login_type == "m.login.password"


CONFIG: dict[str, Any] = {
    "public_baseurl": "https://m.example.com",
    "homeservers": {
        "hs1": {"base_url": "https://hs1.example.com"},
        "hs2": {"base_url": "https://hs2.example.com"},
        "sso": {"base_url": "https://sso.example.com"},
    },
    "routes": [
        {"name": "hs2-ids", "match": {"user_id": "@.*:hs2\\.example\\.com"}, "homeserver": "hs2"},
        {"name": "dept2", "match": {"address": ".*@dept2\\.example\\.com"}, "homeserver": "hs2"},
        {"name": "ops", "match": {"localpart": "ops-.*"}, "homeserver": "hs2"},
        {"name": "vpn", "match": {"client_ip": "10.8.0.0/16"}, "homeserver": "hs2"},
    ],
    "default_homeserver": "hs1",
    "sso": {"default": "sso"},
}


def decide(body: dict[str, Any], client_ip: str = "192.0.2.1", **overrides: Any) -> tuple[str, str]:
    raw = copy.deepcopy(CONFIG)
    raw.update(overrides)
    router = LoginRoutes(PortalConfig.from_config(raw))
    login = {"type": "m.login.password", **body}
    decision = router.decide(login, check_login_body(login), client_ip)
    return decision.target.name, decision.rule_name


def user(name: str) -> dict[str, Any]:
    return {"identifier": {"type": "m.id.user", "user": name}}


def test_routes_first_match_wins() -> None:
    assert decide(user("@a:hs2.example.com")) == ("hs2", "hs2-ids")
    assert decide(user("@a:hs1.example.com")) == ("hs1", "default")
    assert decide(user("ops-bot")) == ("hs2", "ops")
    assert decide(user("alice"), client_ip="10.8.3.4") == ("hs2", "vpn")
    email = {
        "identifier": {
            "type": "m.id.thirdparty",
            "medium": "email",
            "address": "x@dept2.example.com",
        }
    }
    assert decide(email) == ("hs2", "dept2")
    assert decide({"medium": "email", "address": "x@dept2.example.com"}) == ("hs2", "dept2")


def test_bare_localpart_is_qualified_with_server_name_only_if_configured() -> None:
    assert decide(user("alice")) == ("hs1", "default")
    assert decide(user("alice"), server_name="hs2.example.com") == ("hs2", "hs2-ids")


def test_login_token_goes_to_its_issuer_else_the_default_sso_homeserver() -> None:
    assert decide({"type": "m.login.token", "token": "t"}) == ("sso", "sso-default")
    router = LoginRoutes(PortalConfig.from_config(CONFIG))
    body = {"type": "m.login.token", "token": "t"}
    issued = router.decide(body, "m.login.token", "192.0.2.1", token_issuer="hs2")
    assert (issued.target.name, issued.rule_name) == ("hs2", "sso")
    # A name that is no longer configured (the config changed): the default.
    gone = router.decide(body, "m.login.token", "192.0.2.1", token_issuer="hs9")
    assert (gone.target.name, gone.rule_name) == ("sso", "sso-default")


def test_hash_pool_is_sticky_across_spellings_when_server_name_is_set() -> None:
    pool = [{"name": "pool", "pool": ["hs1", "hs2", "sso"]}]
    typed = [
        decide(user(u), routes=pool, server_name="ex.com")[0]
        for u in ("alice", "@alice:ex.com", "ALICE", "@Alice:ex.com")
    ]
    assert len(set(typed)) == 1


@pytest.mark.parametrize(
    ("mode", "user_agent", "expected"),
    [
        (Mode.REDIRECT, "Dart/3.5 (dart:io)", Mode.REDIRECT),
        (Mode.PROXY, "Mozilla/5.0", Mode.PROXY),
        (Mode.AUTO, "Dart/3.5 (dart:io)", Mode.PROXY),
        (Mode.AUTO, "FluffyChat/1.20 Dart/3.5 (dart:io)", Mode.PROXY),
        (Mode.AUTO, "Mozilla/5.0", Mode.REDIRECT),
        (Mode.AUTO, None, Mode.REDIRECT),
    ],
)
def test_choose_mode(mode: Mode, user_agent: str | None, expected: Mode) -> None:
    patterns = PortalConfig.from_config(CONFIG).proxy_user_agents
    assert choose_mode(mode, user_agent, patterns) is expected
