"""SSO through the portal: the token store, the sso config section, signed callbacks, URLs,
and combining several homeservers' SSO login flows."""

from __future__ import annotations

import copy
import urllib.parse
from typing import Any

import pytest
from twisted.internet import task

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.config.sso import SsoSettings
from synapse_base_cs_url.portal.discovery import combine_login_flows
from synapse_base_cs_url.portal.sso.callback import (
    CALLBACK_LIFETIME,
    CallbackSigner,
    add_login_token,
    callback_url,
    check_redirect_url,
    confirmation_page,
    homeserver_redirect_location,
    parse_callback,
    redirect_url_param,
    whitelisted,
)
from synapse_base_cs_url.portal.sso_tokens import SsoTokenStore
from synapse_base_cs_url.portal.state.keys import token_key, token_tag
from tests.harness.deferreds import settle

# --- the token store ----------------------------------------------------------------------


def run(coro: Any) -> Any:
    """The in-memory store's coroutines never wait: run one to completion."""
    return settle(coro)


def Clock() -> task.Clock:
    clock = task.Clock()
    clock.advance(1000)
    return clock


def test_store_remembers_until_taken_once() -> None:
    store = SsoTokenStore.build(120, 10, Clock())
    assert run(store.remember("syl_a", "hs2")) is True
    assert run(store.take("syl_b")) is None
    assert run(store.take("syl_a")) == "hs2"
    assert run(store.take("syl_a")) is None  # forgotten once used
    assert len(store) == 0


def test_store_forgets_after_the_ttl() -> None:
    clock = Clock()
    store = SsoTokenStore.build(120, 10, clock)
    run(store.remember("old", "hs1"))
    clock.advance(60)
    run(store.remember("new", "hs2"))
    clock.advance(60)  # "old" is exactly 120 s old: expired
    assert run(store.take("old")) is None
    assert run(store.take("new")) == "hs2"
    run(store.remember("later", "hs2"))
    clock.advance(119.9)
    assert run(store.take("later")) == "hs2"


def test_expired_entries_are_dropped_without_being_asked_for() -> None:
    clock = Clock()
    store = SsoTokenStore.build(10, 1000, clock)
    for i in range(100):
        run(store.remember(f"t{i}", "hs1"))
    clock.advance(11)
    run(store.remember("fresh", "hs2"))
    assert len(store) == 1
    assert store.evicted == 0


def test_store_size_is_bounded_oldest_dropped_first() -> None:
    clock = Clock()
    store = SsoTokenStore.build(120, 3, clock)
    for i in range(5):
        clock.advance(1)
        run(store.remember(f"t{i}", f"hs{i}"))
    assert len(store) == 3
    assert store.evicted == 2
    assert run(store.take("t0")) is None
    assert run(store.take("t1")) is None
    assert [run(store.take(f"t{i}")) for i in (2, 3, 4)] == ["hs2", "hs3", "hs4"]


def test_first_record_of_a_token_wins() -> None:
    store = SsoTokenStore.build(120, 10, Clock())
    assert run(store.remember("t", "hs2")) is True
    assert run(store.remember("t", "hs1")) is False  # a replayed callback cannot re-plant it
    assert run(store.take("t")) == "hs2"


def test_store_keeps_no_token() -> None:
    store = SsoTokenStore.build(120, 10, Clock())
    run(store.remember("syl_secret_token", "hs2"))
    assert "syl_secret_token" not in repr(store.store._memory._entries)
    assert token_key("syl_secret_token") in store.store
    tag = token_tag("syl_secret_token")
    assert len(tag) == 12
    assert tag in token_key("syl_secret_token")


@pytest.mark.parametrize(("ttl", "size"), [(0, 10), (-1, 10), (10, 0)])
def test_store_refuses_nonsense_bounds(ttl: float, size: int) -> None:
    with pytest.raises(ValueError):
        SsoTokenStore.build(ttl, size, Clock())


# --- config -------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "public_baseurl": "https://matrix.example.com",
    "homeservers": {
        "hs1": {"base_url": "https://hs1.example.com"},
        "hs2": {"base_url": "https://hs2.example.com"},
    },
    "default_homeserver": "hs1",
}


def config(**overrides: Any) -> PortalConfig:
    raw = copy.deepcopy(BASE)
    raw.update(overrides)
    return PortalConfig.from_config(raw)


def test_sso_defaults() -> None:
    sso = config().sso
    assert sso == SsoSettings(default="hs1")
    assert (sso.token_ttl, sso.max_tokens, sso.client_whitelist) == (120.0, 100_000, ())
    assert config().sso.default == "hs1"


def test_sso_section() -> None:
    c = config(
        sso={
            "default": "hs2",
            "identity_providers": {"cas": "hs2", "oidc-github": "hs1"},
            "client_whitelist": ["https://app.element.io/"],
            "token_ttl": 30,
            "max_tokens": 5,
        }
    )
    assert c.sso.default == "hs2"
    assert c.sso.offered_by("oidc-github") == ("hs1",)
    assert c.sso.offered_by("cas") == ("hs2",)
    assert c.sso.offered_by("saml") == ("hs2",)
    assert c.sso.offered_by(None) == ("hs2",)
    assert c.sso.homeservers == ("hs2", "hs1")
    assert (c.sso.token_ttl, c.sso.max_tokens) == (30.0, 5)
    assert c.sso.client_whitelist == ("https://app.element.io/",)


@pytest.mark.parametrize(
    ("entry", "kept"),
    [
        # Without the slash, "https://app.element.io" also matches app.element.io.evil.example
        ("https://app.element.io", "https://app.element.io/"),
        ("https://app.element.io:8443", "https://app.element.io:8443/"),
        ("element://connect", "element://connect/"),
        ("https://app.element.io/", "https://app.element.io/"),
        ("https://app.example/login/", "https://app.example/login/"),
        ("https://app.example/login", "https://app.example/login"),  # a path prefix: as given
        # An app's own scheme names no host, and needs none: no other site answers it.
        ("com.example.app:/callback", "com.example.app:/callback"),
    ],
)
def test_a_whitelist_entry_without_a_path_ends_at_its_host(entry: str, kept: str) -> None:
    assert config(sso={"client_whitelist": [entry]}).sso.client_whitelist == (kept,)


SSO_ERRORS = [
    ({"sso": ["hs1"]}, "sso: must be a mapping (keys: default, identity_providers, "),
    ({"sso": {"defaults": "hs1"}}, "sso: unknown key 'defaults'; allowed keys: client_whitelist"),
    ({"sso": {"default": "hs3"}}, "sso.default: unknown homeserver 'hs3'; configured "),
    # The old name of sso.default, never released, is gone:
    ({"sso_homeserver": "hs2"}, "config: unknown key 'sso_homeserver'"),
    (
        {"sso": {"identity_providers": ["cas"]}},
        "sso.identity_providers: must be a mapping of identity provider id to a homeserver name",
    ),
    (
        {"sso": {"identity_providers": {"cas": "hs3"}}},
        "sso.identity_providers.cas: unknown homeserver 'hs3'; configured homeservers: hs1, hs2",
    ),
    (
        {"sso": {"identity_providers": {"cas": 1}}},
        "sso.identity_providers.cas: must be the name of a homeserver, not int",
    ),
    (
        {"sso": {"identity_providers": {"oidc/github": "hs1"}}},
        "sso.identity_providers: invalid identity provider id 'oidc/github'",
    ),
    (
        {"sso": {"client_whitelist": "https://app.example/"}},
        "sso.client_whitelist: must be a list of URL prefixes, not str",
    ),
    ({"sso": {"client_whitelist": [""]}}, "sso.client_whitelist[0]: must be a URL prefix"),
    # A prefix without scheme or host cannot say which site it trusts:
    (
        {"sso": {"client_whitelist": ["https://ok.example/", "app.element.io"]}},
        "sso.client_whitelist[1]: must be a URL prefix with a scheme and a host",
    ),
    (
        {"sso": {"client_whitelist": ["https://"]}},
        "sso.client_whitelist[0]: must be a URL prefix with a scheme and a host",
    ),
    (
        {"sso": {"client_whitelist": ["https:///cb"]}},
        "sso.client_whitelist[0]: must be a URL prefix with a scheme and a host",
    ),
    (
        {"sso": {"client_whitelist": ["//app.element.io/"]}},
        "sso.client_whitelist[0]: must be a URL prefix with a scheme and a host",
    ),
    ({"sso": {"token_ttl": 0}}, "sso.token_ttl: must be more than 0 seconds, not 0"),
    ({"sso": {"token_ttl": "2m"}}, "sso.token_ttl: must be a number of seconds, not '2m'"),
    ({"sso": {"max_tokens": 0}}, "sso.max_tokens: must be a positive whole number, not 0"),
    ({"sso": {"max_tokens": True}}, "sso.max_tokens: must be a positive whole number, not True"),
]


@pytest.mark.parametrize(("overrides", "message"), SSO_ERRORS)
def test_sso_config_errors_name_the_key(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as e:
        config(**overrides)
    assert str(e.value).startswith(message), str(e.value)


# --- callbacks and URLs -------------------------------------------------------------------

NOW = 1_800_000_000.0
CLIENT = "https://app.example/#/login?x=1"


def signed_query(signer: CallbackSigner, hs: str = "hs2", to: str = CLIENT, **extra: str) -> bytes:
    url = callback_url("https://portal.example", signer, hs, to, NOW)
    assert url.startswith("https://portal.example/_synapse_base_cs_url/sso/return?")
    query = url.partition("?")[2]
    if extra:
        query += "&" + urllib.parse.urlencode(extra)
    return query.encode()


def test_a_signed_callback_with_a_token_is_accepted() -> None:
    signer = CallbackSigner()
    callback = parse_callback(
        signed_query(signer, loginToken="syl_T"), signer, ["hs1", "hs2"], NOW + 5
    )
    assert (callback.hs, callback.to, callback.login_token) == ("hs2", CLIENT, "syl_T")


def refused(query: bytes, signer: CallbackSigner, now: float = NOW) -> errors.MatrixError:
    with pytest.raises(errors.MatrixError) as e:
        parse_callback(query, signer, ["hs1", "hs2"], now)
    return e.value


def test_tampered_or_foreign_callbacks_are_refused() -> None:
    signer = CallbackSigner()
    good = signed_query(signer, loginToken="T").decode()
    for bad in (
        good.replace("hs=hs2", "hs=hs1"),  # plant a token for another homeserver
        good.replace("to=https", "to=http"),  # send the token somewhere else
        good.replace("exp=", "exp=9"),  # extend its life
    ):
        error = refused(bad.encode(), signer)
        assert (error.status, error.errcode) == (403, "M_FORBIDDEN")
        assert "signature" in error.message
    # Signed by another portal process (another key):
    error = refused(signed_query(CallbackSigner(), loginToken="T"), signer)
    assert error.status == 403
    error = refused(good.replace("exp=", "exp=x").encode(), signer)
    assert error.status == 403


def test_expired_callbacks_are_refused() -> None:
    signer = CallbackSigner()
    error = refused(signed_query(signer, loginToken="T"), signer, NOW + CALLBACK_LIFETIME + 1)
    assert (error.status, error.errcode) == (403, "M_FORBIDDEN")
    assert "expired" in error.message


def test_callbacks_missing_or_repeating_a_parameter_are_400() -> None:
    signer = CallbackSigner()
    no_token = refused(signed_query(signer), signer)
    assert (no_token.status, no_token.errcode) == (400, "M_MISSING_PARAM")
    assert "loginToken" in no_token.message
    twice = signed_query(signer, loginToken="a") + b"&loginToken=b"
    assert refused(twice, signer).status == 400
    assert refused(b"", signer).status == 400


def test_a_signed_callback_for_a_homeserver_no_longer_configured_is_refused() -> None:
    signer = CallbackSigner()
    query = signed_query(signer, hs="gone", loginToken="T")
    assert refused(query, signer).status == 403


def test_homeserver_redirect_replaces_only_redirect_url() -> None:
    location = homeserver_redirect_location(
        "https://hs2.example.com/prefix",
        b"/_matrix/client/v3/login/sso/redirect/cas",
        b"redirectUrl=https%3A%2F%2Fapp.example%2F&action=register",
        "https://portal.example/_synapse_base_cs_url/sso/return?hs=hs2&to=x",
    )
    url = urllib.parse.urlsplit(location.decode())
    assert url.netloc == "hs2.example.com"
    assert url.path == "/prefix/_matrix/client/v3/login/sso/redirect/cas"
    assert urllib.parse.parse_qs(url.query) == {
        "action": ["register"],
        "redirectUrl": ["https://portal.example/_synapse_base_cs_url/sso/return?hs=hs2&to=x"],
    }


def test_redirect_url_parameter() -> None:
    assert redirect_url_param(b"redirectUrl=https%3A%2F%2Fa.example%2F%3Fq%3D1") == (
        "https://a.example/?q=1"
    )
    for bad in (b"", b"redirectUrl=", b"redirectUrl=a&redirectUrl=b"):
        with pytest.raises(errors.MatrixError) as e:
            redirect_url_param(bad)
        assert (e.value.status, e.value.errcode) == (400, "M_MISSING_PARAM")
    check_redirect_url("io.element.app:/callback")
    for bad_url in (
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,x",
        "/rel",
        "http://[::1",  # urlsplit raises ValueError
        "https://a]b/",
    ):
        with pytest.raises(errors.MatrixError) as e:
            check_redirect_url(bad_url)
        assert e.value.errcode == "M_INVALID_PARAM"


def test_login_token_is_appended_keeping_the_clients_query() -> None:
    assert add_login_token("https://app.example/cb?a=1&b=", "T") == (
        "https://app.example/cb?a=1&b=&loginToken=T"
    )
    assert add_login_token("https://app.example/#/room", "T") == (
        "https://app.example/?loginToken=T#/room"
    )


def test_whitelist_and_confirmation_page() -> None:
    assert whitelisted("https://app.element.io/#/", ("https://app.element.io/",))
    assert not whitelisted("https://app.element.io.evil.example/", ("https://app.element.io/",))


@pytest.mark.parametrize(
    "to",
    ["https://app.element.io", "https://app.element.io?x=1", "https://app.element.io#/room"],
)
def test_a_client_url_without_a_path_is_its_host_s_root(to: str) -> None:
    """The same page as with its slash: whitelisted by ``https://app.element.io/``."""
    assert whitelisted(to, ("https://app.element.io/",))


@pytest.mark.parametrize(
    "to",
    [
        "https://app.element.io.evil.example",
        "https://app.element.io.evil.example?x=1",
        "https://app.element.io@evil.example",
        "https://app.element.io:8443",
        "https://app.element.io\\@evil.example",
        "http://app.element.io",
    ],
)
def test_a_host_that_merely_starts_like_a_whitelisted_one_is_not(to: str) -> None:
    assert not whitelisted(to, ("https://app.element.io/",))
    page = confirmation_page(
        'https://evil.example/?loginToken=T&"x', 'https://evil.example/?"x'
    ).decode()
    assert "<strong>evil.example</strong>" in page
    assert 'href="https://evil.example/?loginToken=T&amp;&quot;x"' in page


# --- login flows from several SSO homeservers ---------------------------------------------


def test_sso_flows_list_each_identity_provider_from_the_homeserver_serving_it() -> None:
    sso_flow = {"type": "m.login.sso", "identity_providers": []}
    answers = [
        (
            "hs1",
            {
                "flows": [
                    {"type": "m.login.password"},
                    {
                        **sso_flow,
                        "identity_providers": [
                            {"id": "oidc-github", "name": "GitHub"},
                            {"id": "cas", "name": "hs1 CAS (shadowed)"},
                            {"id": "saml"},
                        ],
                    },
                    {"type": "m.login.token"},
                    {"type": "m.login.cas"},
                ]
            },
        ),
        (
            "hs2",
            {
                "flows": [
                    {"type": "m.login.password"},
                    {
                        **sso_flow,
                        "identity_providers": [
                            {"id": "cas", "name": "hs2 CAS"},
                            {"id": "oidc-github", "name": "not served by hs2"},
                        ],
                    },
                    {"type": "m.login.token", "get_login_token": True},
                    {"type": "m.login.cas"},
                ]
            },
        ),
        ("hs3", {"flows": [{"type": "m.login.password"}]}),
    ]
    sso = SsoSettings(default="hs1", identity_providers={"cas": ("hs2",)})
    assert combine_login_flows(answers, sso=sso) == {
        "flows": [
            {"type": "m.login.password"},
            {
                "type": "m.login.sso",
                "identity_providers": [
                    {"id": "oidc-github", "name": "GitHub"},
                    {"id": "saml"},
                    {"id": "cas", "name": "hs2 CAS"},
                ],
            },
            {"type": "m.login.token"},
            {"type": "m.login.cas"},
        ]
    }
    # The default offers no SSO at all: only hs2's own providers, and no legacy CAS flow.
    only_hs2 = SsoSettings(default="hs3", identity_providers={"cas": ("hs2",)})
    assert combine_login_flows(answers, sso=only_hs2)["flows"][1:] == [
        {"type": "m.login.sso", "identity_providers": [{"id": "cas", "name": "hs2 CAS"}]},
        {"type": "m.login.token", "get_login_token": True},
    ]
    # An SSO homeserver that did not answer is simply left out.
    assert combine_login_flows(answers[:1], sso=sso)["flows"][1]["identity_providers"] == [
        {"id": "oidc-github", "name": "GitHub"},
        {"id": "saml"},
    ]
    # A provider both homeservers offer is listed once, as the first of them lists it.
    shared = SsoSettings(default="hs1", identity_providers={"cas": ("hs2", "hs1")})
    assert combine_login_flows(answers, sso=shared)["flows"][1]["identity_providers"] == [
        {"id": "oidc-github", "name": "GitHub"},
        {"id": "cas", "name": "hs1 CAS (shadowed)"},
        {"id": "saml"},
    ]


def test_a_rotated_signer_accepts_the_previous_key_and_signs_with_the_new_one() -> None:
    old, new = b"o" * 32, b"n" * 32
    before, rotated, forgetful = (
        CallbackSigner(old),
        CallbackSigner(new, [old]),
        CallbackSigner(new),
    )
    sig = before.sign("hs2", 2_000_000_000, "https://app.example/")
    assert rotated.valid("hs2", 2_000_000_000, "https://app.example/", sig)
    assert not forgetful.valid("hs2", 2_000_000_000, "https://app.example/", sig)
    assert (
        rotated.sign("hs2", 1, "x") == forgetful.sign("hs2", 1, "x") != before.sign("hs2", 1, "x")
    )
    assert not rotated.valid("hs1", 2_000_000_000, "https://app.example/", sig)
