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
    binding_of,
    cookie,
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
    assert sso.offered_by("unlisted") == ("hs2",)  # nobody knows who offers it: the default
    assert sso.default == "hs2"  # unknown tokens, CAS
    assert sso.homeservers == ("hs2", "hs3", "hs1")
    plain = PortalConfig.from_config(raw_config(identity_providers={"x": "hs1"})).sso
    assert plain.offered_by("x") == ("hs1",) and plain.offered_by(None) == ("hs1",)


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
        ({"page": {"logo_url": "https://a.example;script-src */x.png"}}, "sso.page.logo_url"),
        ({"page": {"logo_url": "//a.example/x.png"}}, "sso.page.logo_url: must be an"),
        ({"page": {"logo_url": "https://u@a.example/x.png"}}, "sso.page.logo_url: must be an"),
        ({"page": {"state_ttl": 0}}, "sso.page.state_ttl: must be more than 0"),
        ({"page": {"state_ttl": 0.5}}, "sso.page.state_ttl: at least 1 second"),
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
    state = PageState(REDIRECT.decode(), "redirectUrl=x\u00e9", int(NOW) + 60, "b" * 32)
    encoded = state.encode(signer)
    assert decode_state(encoded, signer, NOW) == state
    with pytest.raises(StateRefused) as expired:
        decode_state(encoded, signer, NOW + 61)
    assert expired.value.expired
    payload, _, sig = encoded.partition(".")
    other = PageState(REDIRECT.decode(), "redirectUrl=https://evil.example", state.exp, "b" * 32)
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
    # The state goes with one form cookie only.
    assert PageState("/p", "q", 1, binding_of("cookie-a")).bound_to("cookie-a")
    assert not PageState("/p", "q", 1, binding_of("cookie-a")).bound_to("cookie-b")
    assert not PageState("/p", "q", 1, binding_of("cookie-a")).bound_to(None)


def test_a_cookie_is_found_whatever_else_the_header_holds() -> None:
    header = b'a="x; synapse_base_cs_url_sso_form=abc; other=1'
    assert cookie(header, "synapse_base_cs_url_sso_form") == "abc"
    assert cookie(header, "missing") is None
    assert cookie(None, "synapse_base_cs_url_sso_form") is None


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


class Browser:
    """One browser at an in-memory portal: it keeps the cookies the portal sets."""

    def __init__(self, portal: InMemoryPortal) -> None:
        self.portal = portal
        self.cookies: dict[str, str] = {}

    def _send(self, method: bytes, path: bytes, body: bytes | None, headers: list[Any]) -> Any:
        if self.cookies:
            jar = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            headers = [*headers, (b"Cookie", jar.encode())]
        answer = self.portal.request(method, path, body, headers=headers)
        for value in answer.headers.getRawHeaders(b"set-cookie") or []:
            name, _, rest = value.decode().partition("=")
            self.cookies[name] = rest.split(";")[0]
        return answer

    def start(self, idp: bytes = b"oidc-corp") -> Any:
        query = urllib.parse.urlencode({"redirectUrl": CLIENT}).encode()
        path = b"/_matrix/client/v3/login/sso/redirect"
        path += (b"/" + idp if idp else b"") + b"?" + query
        return self._send(b"GET", path, None, [])

    def submit(self, state: str, identifier: str, **more: str) -> Any:
        fields = {"state": state, "identifier": identifier, **more}
        body = urllib.parse.urlencode(fields).encode()
        headers = [(b"Content-Type", b"application/x-www-form-urlencoded")]
        return self._send(b"POST", SIGN_IN_PATH, body, headers)

    def post(self, body: bytes, headers: list[Any]) -> Any:
        return self._send(b"POST", SIGN_IN_PATH, body, headers)

    def submit_with(self, state: str, identifier: str, headers: list[Any]) -> Any:
        body = urllib.parse.urlencode({"state": state, "identifier": identifier}).encode()
        form = [(b"Content-Type", b"application/x-www-form-urlencoded"), *headers]
        return self._send(b"POST", SIGN_IN_PATH, body, form)


def form_state(body: bytes) -> str:
    found = re.search(rb'name="state" value="([^"]+)"', body)
    assert found is not None, body
    return found.group(1).decode()


def asked(raw: dict[str, Any] | None = None) -> tuple[Browser, str]:
    """A browser at a shared provider's page, and the page's form state."""
    browser = Browser(InMemoryPortal(raw or raw_config()))
    page = browser.start()
    assert page.code == 200
    return browser, form_state(page.body)


def test_a_shared_provider_asks_and_the_routes_send_a_name_home() -> None:
    browser = Browser(InMemoryPortal(raw_config()))
    page = browser.start()
    assert page.code == 200
    assert page.header(b"Content-Type") == b"text/html; charset=utf-8"
    assert b'<label for="identifier">' in page.body
    form_cookie = page.header(b"Set-Cookie").decode()
    # A host-only cookie on an https portal: no sibling subdomain can set one for it.
    assert form_cookie.startswith("__Host-synapse_base_cs_url_sso_form=")
    assert "; Path=/;" in form_cookie and form_cookie.endswith("; Secure")
    assert "SameSite=Strict" in form_cookie and "HttpOnly" in form_cookie
    state = form_state(page.body)
    sent = browser.submit(state, "bea")
    assert sent.code == 302
    location = sent.header(b"Location").decode()
    assert location.startswith("http://127.0.0.1:8002" + REDIRECT.decode() + "?redirectUrl=")
    callback = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["redirectUrl"][0]
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)["to"] == [CLIENT]
    assert sent.header(b"Set-Cookie") is None  # remember_for is off by default
    # A user id on a homeserver's server name goes there; the default place for the rest.
    assert (
        browser.submit(state, "@x:hs1.example")
        .header(b"Location")
        .startswith(b"http://127.0.0.1:8001/")
    )
    assert browser.submit(state, "carol").header(b"Location").startswith(b"http://127.0.0.1:8001/")
    # A second page in the same browser keeps its form cookie: both forms stay good.
    browser.start()
    assert browser.submit(state, "bea").code == 302
    metric = browser.portal.metric
    assert metric("synapse_base_cs_url_portal_sso_sign_ins_total", result="page") == 2
    assert metric("synapse_base_cs_url_portal_sso_sign_ins_total", result="sent") == 4


def test_a_provider_of_one_homeserver_does_not_ask() -> None:
    answer = Browser(InMemoryPortal(raw_config())).start(b"oidc-one")
    assert answer.code == 302
    assert answer.header(b"Location").startswith(b"http://127.0.0.1:8003/")


def test_an_account_elsewhere_is_told_so() -> None:
    browser, state = asked()
    answer = browser.submit(state, "@x:hs3.example")
    assert answer.code == 403
    assert b"does not offer this way of signing in" in answer.body
    assert answer.header(b"Location") is None
    other = browser.submit(state, "@bob:matrix.org")
    assert other.code == 400
    assert b"not on a homeserver of this deployment" in other.body


def test_bad_input_is_the_page_again_with_the_error_tied_to_the_field() -> None:
    browser, state = asked()
    answer = browser.submit(state, "<img src=x onerror=alert(1)>")
    assert answer.code == 400
    assert b"&lt;img src=x onerror=alert(1)&gt;" in answer.body
    assert b"<img src=x" not in answer.body
    assert b'id="identifier-error"' in answer.body
    assert form_state(answer.body) == state  # the form is still valid
    assert browser.submit(state, "  ").code == 400


def test_a_forged_foreign_or_cookieless_form_is_refused_without_a_form() -> None:
    browser, state = asked()
    payload, _, sig = state.partition(".")
    stranger = Browser(browser.portal)  # another browser: another site's auto-posting form
    form = [(b"Content-Type", b"application/x-www-form-urlencoded")]
    for answer in (
        browser.submit(payload + "." + sig[::-1], "bea"),
        browser.submit("", "bea"),
        stranger.submit(state, "bea"),
        browser.post(b"state=" + state.encode() + b"&identifier=bea", []),
        browser.post(b"\xff\xfe", form),
    ):
        assert answer.code == 403
        assert b"start signing in again" in answer.body
        assert b"<form" not in answer.body
    # A browser that says the form came from another site; a form cookie planted beside
    # the portal's own (a sibling subdomain's, for a wider domain): neither is trusted.
    assert browser.submit_with(state, "bea", [(b"Sec-Fetch-Site", b"same-site")]).code == 403
    assert browser.submit_with(state, "bea", [(b"Sec-Fetch-Site", b"same-origin")]).code == 302
    name = "__Host-synapse_base_cs_url_sso_form"
    planted = f"{name}={browser.cookies[name]}; {name}=AAAAAAAAAAAAAAAAAAAAAA"
    fresh = Browser(browser.portal)
    assert fresh.submit_with(state, "bea", [(b"Cookie", planted.encode())]).code == 403
    metric = browser.portal.metric
    assert metric("synapse_base_cs_url_portal_sso_sign_ins_total", result="refused") == 7


def test_an_expired_form_is_refused() -> None:
    browser, state = asked(raw_config(page={"state_ttl": 60}))
    browser.portal.advance(61)
    answer = browser.submit(state, "bea")
    assert answer.code == 403
    assert b"expired" in answer.body


def test_a_browser_remembers_only_when_asked_to() -> None:
    browser, state = asked(raw_config(page={"remember_for": 3600}))
    assert b'name="remember"' in browser.start().body
    assert browser.submit(state, "bea").header(b"Set-Cookie") is None  # not ticked
    # Ticked, and a typo: the page comes back with the box still ticked.
    again_page = browser.submit(state, "not valid", remember="on")
    assert again_page.code == 400
    assert b'value="on" checked>' in again_page.body
    sent = browser.submit(state, "bea", remember="on")
    remembered_cookie = sent.header(b"Set-Cookie").decode()
    assert remembered_cookie.startswith("__Host-synapse_base_cs_url_sso_oidc-corp=")
    assert "; Path=/;" in remembered_cookie
    assert "HttpOnly" in remembered_cookie and "SameSite=Lax" in remembered_cookie
    assert "Secure" in remembered_cookie
    again = browser.start()
    assert again.code == 302
    assert again.header(b"Location").startswith(b"http://127.0.0.1:8002/")
    # Not once it has expired.
    browser.portal.advance(3601)
    assert browser.start().code == 200


def test_a_redirect_without_a_provider_asks_when_several_homeservers_offer_sso() -> None:
    browser = Browser(InMemoryPortal(raw_config(default=["hs2", "hs3"])))
    page = browser.start(b"")
    assert page.code == 200
    sent = browser.submit(form_state(page.body), "@x:hs3.example")
    assert sent.code == 302
    assert sent.header(b"Location").startswith(
        b"http://127.0.0.1:8003/_matrix/client/v3/login/sso/redirect?"
    )
    # The name hs1 serves is not offered without a provider here.
    assert browser.submit(form_state(page.body), "@x:hs1.example").code == 403
    # Legacy CAS goes to sso.default's first, as its flow is listed from there: no page.
    query = urllib.parse.urlencode({"redirectUrl": CLIENT}).encode()
    cas = browser.portal.request(b"GET", b"/_matrix/client/v3/login/cas/redirect?" + query)
    assert cas.code == 302
    assert cas.header(b"Location").startswith(b"http://127.0.0.1:8002/")
