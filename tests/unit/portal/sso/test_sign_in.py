"""The page that asks who signs in with an identity provider several homeservers share: its
config, its signed state and cookie, the form read as a login, the page's headers and
escaping, and the whole handler on an in-memory portal (routes only: the directory's part is
:mod:`test_sign_in_homes` and the integration test's)."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.config.sso_page import SsoPageSettings
from synapse_base_cs_url.portal.sso.callback import CallbackSigner
from synapse_base_cs_url.portal.sso.page import PageView, SignInPage
from synapse_base_cs_url.portal.sso.page_state import (
    PageState,
    StateRefused,
    cookie_value,
    decode_state,
    remembered,
)
from synapse_base_cs_url.portal.sso.sign_in import SIGN_IN_PATH, _login_by
from tests.harness.requests import InMemoryPortal

NOW = 1_000_000.0
REDIRECT = b"/_matrix/client/v3/login/sso/redirect/oidc-corp"
CLIENT = "https://app.example/after?x=1"


def raw_config(**sso: Any) -> dict[str, Any]:
    return {
        "public_baseurl": "https://portal.example",
        "homeservers": {
            "hs1": {"base_url": "http://127.0.0.1:8001", "server_name": "hs1.example"},
            "hs2": {"base_url": "http://127.0.0.1:8002", "server_name": "hs2.example"},
            "hs3": {"base_url": "http://127.0.0.1:8003", "server_name": "hs3.example"},
        },
        "routes": [{"name": "b-names", "match": {"localpart": "b.*"}, "homeserver": "hs2"}],
        "default_homeserver": "hs1",
        "sso": {"identity_providers": {"oidc-corp": ["hs1", "hs2"], "oidc-one": "hs3"}, **sso},
    }


# --- config -------------------------------------------------------------------------------


def test_a_provider_may_list_several_homeservers() -> None:
    sso = PortalConfig.from_config(raw_config(default=["hs2", "hs3"])).sso
    assert sso.offered_by("oidc-corp") == ("hs1", "hs2")
    assert sso.offered_by("oidc-one") == ("hs3",)
    assert sso.offered_by(None) == ("hs2", "hs3")
    assert sso.offered_by("unlisted") == ("hs2", "hs3")
    assert sso.default == "hs2"  # unknown tokens, CAS
    assert sso.homeservers == ("hs2", "hs3", "hs1")
    assert sso.asks
    plain = PortalConfig.from_config(raw_config(identity_providers={"x": "hs1"})).sso
    assert not plain.asks and plain.offered_by(None) == ("hs1",)


@pytest.mark.parametrize(
    ("sso", "message"),
    [
        ({"identity_providers": {"x": []}}, "sso.identity_providers.x: must name at least one"),
        ({"identity_providers": {"x": ["hs1", "hs1"]}}, "sso.identity_providers.x: names a"),
        ({"identity_providers": {"x": ["hs1", "hs9"]}}, "sso.identity_providers.x[1]: unknown"),
        ({"default": ["hs1", 3]}, "sso.default[1]: must be the name of a homeserver"),
        ({"page": {"colour": "red"}}, "sso.page: unknown key 'colour'"),
        ({"page": {"name": ""}}, "sso.page.name: must be a name of 1 to 100"),
        ({"page": {"logo_url": "http://logo.example/a.png"}}, "sso.page.logo_url: must be an"),
        ({"page": {"logo_url": "javascript:alert(1)"}}, "sso.page.logo_url: must be an"),
        ({"page": {"state_ttl": 0}}, "sso.page.state_ttl: must be more than 0"),
        ({"page": {"state_ttl": 100000}}, "sso.page.state_ttl: at most 86400"),
        ({"page": {"remember_for": -1}}, "sso.page.remember_for: must not be negative"),
        ({"page": {"template_dir": "/nonexistent/x"}}, "sso.page.template_dir: /nonexistent/x"),
    ],
)
def test_config_errors_name_the_key(sso: dict[str, Any], message: str) -> None:
    raw = raw_config()
    raw["sso"].update(sso)
    with pytest.raises(ValueError, match=re.escape(message)):
        PortalConfig.from_config(raw)


def test_a_template_that_does_not_parse_fails_at_startup(tmp_path: Path) -> None:
    (tmp_path / "sso_sign_in.html").write_text("<p>{% if %}</p>")
    raw = raw_config(page={"template_dir": str(tmp_path)})
    with pytest.raises(ValueError, match=r"sso\.page\.template_dir: .*sso_sign_in\.html"):
        PortalConfig.from_config(raw)


# --- the signed state and the cookie -------------------------------------------------------


def test_the_state_comes_back_only_as_signed_and_in_time() -> None:
    signer = CallbackSigner(b"k" * 32)
    state = PageState(REDIRECT.decode(), "redirectUrl=x", int(NOW) + 60)
    encoded = state.encode(signer)
    assert decode_state(encoded, signer, NOW) == state
    with pytest.raises(StateRefused) as expired:
        decode_state(encoded, signer, NOW + 61)
    assert expired.value.expired
    payload, _, sig = encoded.partition(".")
    other = PageState(REDIRECT.decode(), "redirectUrl=https://evil.example", state.exp)
    for forged in (
        other.encode(CallbackSigner(b"x" * 32)),  # another deployment's key
        other.encode(signer).partition(".")[0] + "." + sig,  # another redirect, old signature
        payload + "." + sig[:-2],
        "not-a-state",
        "",
        "e30." + sig,  # {} as the payload
        "x" * 20000,
    ):
        with pytest.raises(StateRefused) as refused:
            decode_state(forged, signer, NOW)
        assert not refused.value.expired
    # A callback's signature is not a state's, nor a cookie's.
    assert not signer.valid_parts(signer.sign("hs1", 5, "x"), "sso-sign-in-state", "hs1", "5", "x")


def test_the_cookie_remembers_a_homeserver_for_one_provider_until_it_expires() -> None:
    signer = CallbackSigner(b"k" * 32)
    value = cookie_value(signer, "oidc-corp", "hs2", int(NOW) + 60)
    assert remembered(value, signer, "oidc-corp", NOW) == "hs2"
    assert remembered(value, signer, "oidc-other", NOW) is None
    assert remembered(value, signer, "oidc-corp", NOW + 61) is None
    assert remembered(value, CallbackSigner(b"x" * 32), "oidc-corp", NOW) is None
    assert remembered(None, signer, "oidc-corp", NOW) is None
    assert remembered("garbage", signer, "oidc-corp", NOW) is None


# --- what was typed ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "login"),
    [
        ("dave", {"type": "m.id.user", "user": "dave"}),
        ("Dave", {"type": "m.id.user", "user": "Dave"}),
        ("@dave:hs2.example", {"type": "m.id.user", "user": "@dave:hs2.example"}),
        (
            "Dave@Corp.Example",
            {"type": "m.id.thirdparty", "medium": "email", "address": "dave@corp.example"},
        ),
        ("", None),
        ("<script>alert(1)</script>", None),
        ("a b", None),
        ("@dave", None),
        ("@<b>:hs2.example", None),
        ("dave@", None),
        ('"x"@corp.example', None),
        ("a" * 256, None),
    ],
)
def test_what_was_typed_is_read_as_a_login_by_it(typed: str, login: dict[str, str] | None) -> None:
    body = _login_by(typed)
    assert (body["identifier"] if body is not None else None) == login


# --- the page --------------------------------------------------------------------------------


def test_every_value_on_the_page_is_escaped_and_no_script_may_run() -> None:
    page = SignInPage(SsoPageSettings(name="Corp <b>", logo_url="https://cdn.example/l.png"), "/a")
    body = page.render(
        state='"><script>',
        provider="<i>p</i>",
        view=PageView(identifier='"><script>alert(1)</script>', error="<b>bad</b>"),
        csp_nonce="n0nce",
    ).decode()
    assert "<script>" not in body and "<b>" not in body and "<i>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert '<style nonce="n0nce">' in body
    assert 'aria-describedby="identifier-hint identifier-error"' in body
    assert 'aria-invalid="true"' in body
    headers = dict(page.headers("n0nce"))
    csp = headers[b"Content-Security-Policy"].decode()
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "style-src 'nonce-n0nce'" in csp
    assert "img-src 'self' https://cdn.example" in csp
    assert "frame-ancestors 'none'" in csp
    assert headers[b"Cache-Control"] == b"no-store"
    assert headers[b"Referrer-Policy"] == b"no-referrer"
    assert headers[b"X-Frame-Options"] == b"DENY"


def test_an_operators_template_replaces_the_page(tmp_path: Path) -> None:
    (tmp_path / "sso_sign_in.html").write_text(
        "<p>{{ deployment }} asks: {{ identifier }}</p><form>{{ state }}</form>"
    )
    page = SignInPage(SsoPageSettings(name="Acme", template_dir=tmp_path), "/a")
    body = page.render(state="s", provider=None, view=PageView(identifier="<x>"), csp_nonce="n")
    assert body == b"<p>Acme asks: &lt;x&gt;</p><form>s</form>"


# --- the handler, on an in-memory portal ----------------------------------------------------


def start(portal: InMemoryPortal, idp: bytes = b"oidc-corp", cookie: bytes | None = None) -> Any:
    query = urllib.parse.urlencode({"redirectUrl": CLIENT}).encode()
    path = b"/_matrix/client/v3/login/sso/redirect/" + idp + b"?" + query
    headers = [(b"Cookie", cookie)] if cookie is not None else []
    return portal.request(b"GET", path, headers=headers)


def form_state(body: bytes) -> str:
    found = re.search(rb'name="state" value="([^"]+)"', body)
    assert found is not None, body
    return found.group(1).decode()


def submit(portal: InMemoryPortal, state: str, identifier: str) -> Any:
    body = urllib.parse.urlencode({"state": state, "identifier": identifier}).encode()
    headers = [(b"Content-Type", b"application/x-www-form-urlencoded")]
    return portal.request(b"POST", SIGN_IN_PATH, body, headers=headers)


def test_a_shared_provider_asks_and_the_routes_send_a_name_home() -> None:
    portal = InMemoryPortal(raw_config())
    asked = start(portal)
    assert asked.code == 200
    assert asked.header(b"Content-Type") == b"text/html; charset=utf-8"
    assert b'<label for="identifier">' in asked.body
    state = form_state(asked.body)
    sent = submit(portal, state, "bea")
    assert sent.code == 302
    location = sent.header(b"Location").decode()
    assert location.startswith("http://127.0.0.1:8002" + REDIRECT.decode() + "?redirectUrl=")
    callback = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["redirectUrl"][0]
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)["to"] == [CLIENT]
    assert sent.header(b"Set-Cookie") is None  # remember_for is off by default
    # A user id on a homeserver's server name goes there; the default place for the rest.
    assert (
        submit(portal, state, "@x:hs1.example")
        .header(b"Location")
        .startswith(b"http://127.0.0.1:8001/")
    )
    assert submit(portal, state, "carol").header(b"Location").startswith(b"http://127.0.0.1:8001/")
    assert portal.metric("synapse_base_cs_url_portal_sso_sign_ins_total", result="page") == 1
    assert portal.metric("synapse_base_cs_url_portal_sso_sign_ins_total", result="sent") == 3


def test_a_provider_of_one_homeserver_does_not_ask() -> None:
    portal = InMemoryPortal(raw_config())
    answer = start(portal, b"oidc-one")
    assert answer.code == 302
    assert answer.header(b"Location").startswith(b"http://127.0.0.1:8003/")


def test_an_account_on_a_homeserver_without_the_provider_is_told_so() -> None:
    portal = InMemoryPortal(raw_config())
    answer = submit(portal, form_state(start(portal).body), "@x:hs3.example")
    assert answer.code == 403
    assert b"does not offer this way of signing in" in answer.body
    assert answer.header(b"Location") is None


def test_bad_input_is_the_page_again_with_the_error_tied_to_the_field() -> None:
    portal = InMemoryPortal(raw_config())
    state = form_state(start(portal).body)
    answer = submit(portal, state, "<img src=x onerror=alert(1)>")
    assert answer.code == 400
    assert b"&lt;img src=x onerror=alert(1)&gt;" in answer.body
    assert b"<img src=x" not in answer.body
    assert b'id="identifier-error"' in answer.body
    assert form_state(answer.body) == state  # the form is still valid
    assert submit(portal, state, "  ").code == 400


def test_a_forged_or_foreign_form_is_refused_without_a_form() -> None:
    portal = InMemoryPortal(raw_config())
    state = form_state(start(portal).body)
    payload, _, sig = state.partition(".")
    for answer in (
        submit(portal, payload + "." + sig[::-1], "bea"),
        submit(portal, "", "bea"),
        portal.request(b"POST", SIGN_IN_PATH, b"state=" + state.encode() + b"&identifier=bea"),
        portal.request(
            b"POST",
            SIGN_IN_PATH,
            b"\xff\xfe",
            headers=[(b"Content-Type", b"application/x-www-form-urlencoded")],
        ),
    ):
        assert answer.code == 403
        assert b"start signing in again" in answer.body
        assert b"<form" not in answer.body
    assert portal.metric("synapse_base_cs_url_portal_sso_sign_ins_total", result="refused") == 4


def test_an_expired_form_is_refused() -> None:
    portal = InMemoryPortal(raw_config(page={"state_ttl": 60}))
    state = form_state(start(portal).body)
    portal.advance(61)
    answer = submit(portal, state, "bea")
    assert answer.code == 403
    assert b"expired" in answer.body


def test_a_remembered_browser_goes_straight_through() -> None:
    portal = InMemoryPortal(raw_config(page={"remember_for": 3600}))
    sent = submit(portal, form_state(start(portal).body), "bea")
    cookie = sent.header(b"Set-Cookie").decode()
    assert cookie.startswith("synapse_base_cs_url_sso_oidc-corp=")
    assert f"Path={REDIRECT.decode()};" in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    again = start(portal, cookie=cookie.split(";")[0].encode())
    assert again.code == 302
    assert again.header(b"Location").startswith(b"http://127.0.0.1:8002/")
    # Not once it has expired.
    portal.advance(3601)
    assert start(portal, cookie=cookie.split(";")[0].encode()).code == 200


def test_a_redirect_without_a_provider_asks_when_several_homeservers_offer_sso() -> None:
    portal = InMemoryPortal(raw_config(default=["hs2", "hs3"]))
    query = urllib.parse.urlencode({"redirectUrl": CLIENT}).encode()
    asked = portal.request(b"GET", b"/_matrix/client/v3/login/sso/redirect?" + query)
    assert asked.code == 200
    sent = submit(portal, form_state(asked.body), "@x:hs3.example")
    assert sent.code == 302
    assert sent.header(b"Location").startswith(
        b"http://127.0.0.1:8003/_matrix/client/v3/login/sso/redirect?"
    )
    # The name hs1 serves is not offered without a provider here.
    assert submit(portal, form_state(asked.body), "@x:hs1.example").code == 403
