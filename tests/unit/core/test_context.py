from __future__ import annotations

import attr
import pytest

from synapse_base_cs_url.core import LoginContext, localpart_of


@pytest.mark.parametrize(
    ("user_id", "expected"),
    [
        ("@alice:example.org", "alice"),
        ("@alice:example.org:8448", "alice"),
        ("@a.b=c/d:[::1]:8448", "a.b=c/d"),
        ("alice", None),
        ("@alice", None),
        ("@:example.org", None),
        ("@alice:", None),
        ("", None),
    ],
)
def test_localpart_of(user_id: str, expected: str | None) -> None:
    assert localpart_of(user_id) == expected


def test_all_fields_default_to_unknown() -> None:
    ctx = LoginContext()
    assert attr.asdict(ctx) == dict.fromkeys(
        ["user_id", "localpart", "login_type", "client_ip", "device_id", "medium", "address"]
    )
    assert ctx.effective_localpart is None
    assert ctx.routing_key is None


def test_is_frozen() -> None:
    ctx = LoginContext(user_id="@a:b")
    with pytest.raises(attr.exceptions.FrozenInstanceError):
        ctx.user_id = "@c:d"  # type: ignore[misc]


def test_effective_localpart_prefers_explicit_localpart() -> None:
    assert LoginContext(user_id="@alice:hs").effective_localpart == "alice"
    assert LoginContext(user_id="@alice:hs", localpart="bob").effective_localpart == "bob"
    assert LoginContext(user_id="not-an-mxid").effective_localpart is None


@pytest.mark.parametrize(
    ("ctx", "key"),
    [
        (
            LoginContext(user_id="@Alice:HS", localpart="x", address="a@b", client_ip="1.2.3.4"),
            "@alice:hs",
        ),
        (LoginContext(localpart="Alice", address="a@b", client_ip="1.2.3.4"), "alice"),
        (LoginContext(address="A@B.example", client_ip="1.2.3.4"), "a@b.example"),
        (LoginContext(client_ip="1.2.3.4", login_type="m.login.password"), "1.2.3.4"),
        (LoginContext(login_type="m.login.password", device_id="DEV", medium="email"), None),
        (LoginContext(user_id="", localpart="", address="", client_ip=""), None),
    ],
)
def test_routing_key_fallback_order(ctx: LoginContext, key: str | None) -> None:
    assert ctx.routing_key == key


class TestFromLoginBody:
    def test_user_identifier_with_full_user_id(self) -> None:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "@alice:hs"},
            "password": "secret",
            "device_id": "DEV",
        }
        assert LoginContext.from_login_body(body, client_ip="10.0.0.1") == LoginContext(
            user_id="@alice:hs",
            localpart="alice",
            login_type="m.login.password",
            client_ip="10.0.0.1",
            device_id="DEV",
        )

    def test_bare_localpart_is_qualified_only_with_server_name(self) -> None:
        body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"}}
        assert LoginContext.from_login_body(body).user_id is None
        assert LoginContext.from_login_body(body).localpart == "bob"
        ctx = LoginContext.from_login_body(body, server_name="hs.example")
        assert (ctx.user_id, ctx.localpart) == ("@bob:hs.example", "bob")

    def test_thirdparty_identifier(self) -> None:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "a@b.c"},
        }
        ctx = LoginContext.from_login_body(body)
        assert (ctx.medium, ctx.address, ctx.user_id, ctx.localpart) == (
            "email",
            "a@b.c",
            None,
            None,
        )

    def test_phone_identifier_is_msisdn_with_unknown_address(self) -> None:
        body = {"identifier": {"type": "m.id.phone", "country": "GB", "phone": "0123"}}
        ctx = LoginContext.from_login_body(body)
        assert (ctx.medium, ctx.address) == ("msisdn", None)

    def test_deprecated_top_level_fields(self) -> None:
        ctx = LoginContext.from_login_body({"type": "m.login.password", "user": "carol"})
        assert ctx.localpart == "carol"
        ctx = LoginContext.from_login_body({"medium": "email", "address": "c@d.e"})
        assert (ctx.medium, ctx.address) == ("email", "c@d.e")

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"type": 5, "identifier": "nope", "device_id": ["x"]},
            {"identifier": {"type": "m.id.user", "user": 42}},
            {"identifier": {"type": "m.id.thirdparty", "medium": None, "address": {}}},
            {"identifier": {"type": "m.id.unknown", "user": "alice"}},
            {"user": ""},
        ],
    )
    def test_malformed_fields_are_ignored(self, body: dict[str, object]) -> None:
        assert LoginContext.from_login_body(body) == LoginContext()
