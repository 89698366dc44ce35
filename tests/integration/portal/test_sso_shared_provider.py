"""Single sign-on with one identity provider for every homeserver, as a user does it: headless
Chromium opens the portal's SSO redirect as a client would, types who it is on the portal's
page, signs in at the provider, and comes back to the client with a login token.

Two real Synapses (``corp1.test``, ``corp2.test``) running the module with placement, both
configured with the same loopback OpenID provider (``oidc-corp``; ``corp1.test`` also as
``oidc-solo``, which only it offers); real portal processes that find accounts through the
modules (no admin token). Accounts made before the portal (its modules allow while it is not
there): dave on corp2 with an e-mail address, frank on both homeservers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import attr
import pytest
import requests

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess, free_port
from tests.harness.browser import chromium, client_page, new_context
from tests.harness.constants import PASSWORD
from tests.harness.fake_oidc import FakeOidcProvider
from tests.harness.portal import (
    homeserver_entries,
    placement_module,
    placement_secrets,
    portal_homeserver,
)
from tests.harness.sso import CALLBACK, get, token_login
from tests.harness.synapse import start_all

if TYPE_CHECKING:  # Playwright itself is imported by the browser fixture
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.integration

#: Where the client's page sends the user back to (its query must survive).
CLIENT_PATH = "/after-sso?state=abc"
SHARED = "oidc-corp"
SOLO = "oidc-solo"
DAVE_EMAIL = "dave@corp.example"
NAMES = ("hs1", "hs2")


@attr.s(auto_attribs=True)
class Deployment:
    hs: dict[str, SynapseProcess]
    admin: dict[str, str]
    """Each homeserver's admin access token."""
    provider: FakeOidcProvider
    client: str
    """The client's page, where single sign-on ends (its ``redirectUrl``)."""
    portals: dict[str, PortalProcess]
    """``redirect``; ``proxy`` (browsers remember their homeserver for an hour); ``down``
    (a third homeserver the directory cannot reach); ``short`` (forms valid for 1 s)."""


def provider_entry(provider: FakeOidcProvider, idp: str) -> dict[str, Any]:
    """The provider in homeserver.yaml; an account made before single sign-on is taken
    over by the provider's user of that name (``allow_existing_users``), as when a
    deployment moves its users to one identity provider."""
    entry = provider.synapse_config(idp)
    entry["allow_existing_users"] = True
    return entry


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with client_page() as origin:
        yield from _deployment(tmp_path_factory, origin)


def _deployment(tmp_path_factory: pytest.TempPathFactory, origin: str) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("sso-shared")
    provider = FakeOidcProvider()
    hs = {
        name: portal_homeserver(tmp_path_factory, f"corp{name[-1]}.test", module=True)[0]
        for name in NAMES
    }
    secrets = placement_secrets(workdir, (*NAMES, "hs3"))
    base: dict[str, Any] = {
        "public_baseurl": "https://replaced.invalid",
        "homeservers": homeserver_entries(hs, placement_secret_file=secrets),
        "routes": [{"name": "b-names", "match": {"localpart": "b.*"}, "homeserver": "hs2"}],
        "default_homeserver": "hs1",
        "discovery_cache_ttl": 0,
        "directory": {"burst": 1000},
        "sso": {
            "identity_providers": {SHARED: list(NAMES), SOLO: "hs1"},
            "client_whitelist": [origin + "/"],
            "page": {"name": "Example Corp"},
        },
    }
    dead = {
        "base_url": f"http://127.0.0.1:{free_port()}",
        "placement_secret_file": str(secrets["hs3"]),
    }
    variants: dict[str, dict[str, Any]] = {
        "redirect": {},
        "proxy": {"mode": "proxy", "page": {"remember_for": 3600}},
        "down": {"homeservers": {**base["homeservers"], "hs3": dead}},
        "short": {"page": {"state_ttl": 1}},
    }
    portals = {}
    for label, changes in variants.items():
        config = {**base, "mode": changes.get("mode", "redirect")}
        config["homeservers"] = changes.get("homeservers", base["homeservers"])
        config["sso"] = {**base["sso"], "page": {**base["sso"]["page"], **changes.get("page", {})}}
        portals[label] = PortalProcess(config, tmp_path_factory.mktemp(f"sso-shared-{label}"))
    for portal in portals.values():
        portal.config["public_baseurl"] = portal.url  # the browser comes back to it
    for name, h in hs.items():
        providers = [provider_entry(provider, "corp")]
        if name == "hs1":
            providers.append(provider_entry(provider, "solo"))
        h.config.update(
            {
                "public_baseurl": h.base_url + "/",
                "oidc_providers": providers,
                "ip_range_whitelist": ["127.0.0.1"],
                "sso": {"client_whitelist": [p.url + CALLBACK for p in portals.values()]},
            }
        )
        # Until the portal listens, the modules allow: the accounts below predate it.
        placement_module(h, portals["redirect"].url, secrets[name], when_portal_unreachable="allow")
    try:
        start_all(list(hs.values()))
        admin = {}
        for name, h in hs.items():
            h.register_user("admin", PASSWORD, admin=True)
            admin[name] = h.password_login("admin", PASSWORD).json()["access_token"]
            h.register_user("frank", PASSWORD)
        hs["hs2"].register_user("dave", PASSWORD)
        bound = requests.put(
            f"{hs['hs2'].base_url}/_synapse/admin/v2/users/@dave:corp2.test",
            json={"threepids": [{"medium": "email", "address": DAVE_EMAIL}]},
            headers={"Authorization": f"Bearer {admin['hs2']}"},
            timeout=30,
        )
        assert bound.status_code == 200, bound.text
        for portal in portals.values():
            portal.start()
        yield Deployment(hs, admin, provider, origin + CLIENT_PATH, portals)
    finally:
        for portal in portals.values():
            portal.stop()
        for h in hs.values():
            h.stop()
        provider.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as found:
        yield found


def redirect_url(deployment: Deployment, portal: str, idp: str | None = SHARED) -> str:
    path = "/_matrix/client/v3/login/sso/redirect" + (f"/{idp}" if idp else "")
    query = urlencode({"redirectUrl": deployment.client})
    return f"{deployment.portals[portal].url}{path}?{query}"


def open_page(browser: Browser, deployment: Deployment, portal: str) -> Page:
    """A new browser at the portal's SSO redirect: the page that asks who signs in."""
    page = new_context(browser).new_page()
    answer = page.goto(redirect_url(deployment, portal))
    assert answer is not None and answer.status == 200
    assert page.title() == "Sign in to Example Corp"
    return page


def type_in(page: Page, typed: str) -> Any:
    """Type ``typed`` and send the form; the answer to the form's POST."""
    page.fill("#identifier", typed)
    with page.expect_response(re.compile(r"/_synapse_base_cs_url/sso/sign_in$")) as answer:
        page.click("button[type=submit]")
    return answer.value


def home_with_token(deployment: Deployment, page: Page, typed: str, user: str) -> str:
    """Type who signs in; ``user`` signs in at the provider; back at the client, return the
    login token the client got."""
    deployment.provider.expect(user)
    type_in(page, typed)
    page.wait_for_url(lambda url: url.startswith(deployment.client + "&loginToken="))
    query = parse_qs(urlsplit(page.url).query)
    assert query["state"] == ["abc"]
    return query["loginToken"][0]


def logged_in(portal: PortalProcess, token: str) -> dict[str, Any]:
    """The client's token login at the portal (redirect mode: followed to the homeserver)."""
    answer = token_login(portal, token)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def account_exists(deployment: Deployment, name: str, user_id: str) -> bool:
    answer = requests.get(
        f"{deployment.hs[name].base_url}/_synapse/admin/v2/users/{user_id}",
        headers={"Authorization": f"Bearer {deployment.admin[name]}"},
        timeout=30,
    )
    assert answer.status_code in (200, 404), answer.text
    return answer.status_code == 200


def test_an_existing_user_by_email_or_by_name_lands_on_their_homeserver(
    deployment: Deployment, browser: Browser
) -> None:
    portal = deployment.portals["redirect"]
    for typed in (DAVE_EMAIL.upper(), "dave"):
        page = open_page(browser, deployment, "redirect")
        body = logged_in(portal, home_with_token(deployment, page, typed, "dave"))
        assert body["user_id"] == "@dave:corp2.test"
        assert body["base_cs_url"] == deployment.hs["hs2"].base_url
        page.context.close()
    assert not account_exists(deployment, "hs1", "@dave:corp1.test")


def test_a_new_user_gets_one_account_where_the_routes_place_it(
    deployment: Deployment, browser: Browser
) -> None:
    portal = deployment.portals["redirect"]
    page = open_page(browser, deployment, "redirect")
    body = logged_in(portal, home_with_token(deployment, page, "bea", "bea"))
    assert body["user_id"] == "@bea:corp2.test"  # the route for b-names
    assert not account_exists(deployment, "hs1", "@bea:corp1.test")
    # She comes back the next day: the same account, found by the directory now.
    page = open_page(browser, deployment, "redirect")
    assert logged_in(portal, home_with_token(deployment, page, "bea", "bea"))["user_id"] == (
        "@bea:corp2.test"
    )
    assert not account_exists(deployment, "hs1", "@bea:corp1.test")


def test_a_name_held_on_two_homeservers_is_asked_for_the_full_matrix_id(
    deployment: Deployment, browser: Browser
) -> None:
    portal = deployment.portals["redirect"]
    page = open_page(browser, deployment, "redirect")
    answer = type_in(page, "frank")
    assert answer.status == 409
    assert page.inner_text("label[for=identifier]") == "Your full Matrix ID"
    assert page.inner_text("#identifier-choices").split() == [
        "@frank:corp1.test",
        "@frank:corp2.test",
    ]
    body = logged_in(portal, home_with_token(deployment, page, "@frank:corp2.test", "frank"))
    assert body["user_id"] == "@frank:corp2.test"


def test_the_directory_unable_to_say_shows_a_retry_page(
    deployment: Deployment, browser: Browser
) -> None:
    page = open_page(browser, deployment, "down")
    answer = type_in(page, "gina")
    assert answer.status == 503
    assert answer.headers["retry-after"]
    assert "cannot tell right now" in page.inner_text("#identifier-error")
    assert page.inner_text("button") == "Try again"
    assert page.input_value("#identifier") == "gina"
    for name in NAMES:
        assert not account_exists(deployment, name, f"@gina:corp{name[-1]}.test")


def test_markup_typed_in_is_shown_escaped_and_never_runs(
    deployment: Deployment, browser: Browser
) -> None:
    page = open_page(browser, deployment, "redirect")
    typed = '"><script>window.pwned=1</script><b id=injected>x</b>'
    answer = type_in(page, typed)
    assert answer.status == 400
    headers = answer.headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert page.input_value("#identifier") == typed
    assert page.evaluate("window.pwned") is None
    assert page.query_selector("#injected") is None
    # The error is tied to the field, and the field is focused for the next try.
    assert "identifier-error" in (page.get_attribute("#identifier", "aria-describedby") or "")
    assert page.evaluate("document.activeElement.id") == "identifier"


def test_a_forged_foreign_or_expired_form_is_refused(
    deployment: Deployment, browser: Browser
) -> None:
    page = open_page(browser, deployment, "redirect")
    page.eval_on_selector("input[name=state]", "e => { e.value = e.value.slice(0, -3) + 'AAA' }")
    answer = type_in(page, "dave")
    assert answer.status == 403
    assert "start signing in again" in page.inner_text("main")
    assert page.query_selector("form") is None
    # Another site that fetched a page (and its state) and makes a visitor's browser post
    # it: the visitor's browser has no form cookie for that state.
    state = requests.get(redirect_url(deployment, "redirect"), timeout=30).text
    found = re.search(r'name="state" value="([^"]+)"', state)
    assert found is not None
    attacker = new_context(browser).new_page()
    attacker.set_content(
        f'<form method="post" action="{deployment.portals["redirect"].url}'
        '/_synapse_base_cs_url/sso/sign_in">'
        f'<input name="state" value="{found.group(1)}"><input name="identifier" value="dave">'
        "<button>go</button></form>"
    )
    with attacker.expect_response(re.compile(r"/sso/sign_in$")) as posted:
        attacker.click("button")
    assert posted.value.status == 403
    assert posted.value.headers.get("location") is None
    page = open_page(browser, deployment, "short")
    page.wait_for_timeout(1500)
    answer = type_in(page, "dave")
    assert answer.status == 403
    assert "expired" in page.inner_text("main")


def test_a_provider_only_one_homeserver_offers_skips_the_page(deployment: Deployment) -> None:
    answer = get(redirect_url(deployment, "redirect", SOLO))
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(
        deployment.hs["hs1"].base_url + f"/_matrix/client/v3/login/sso/redirect/{SOLO}?"
    )


def test_proxy_mode_and_a_browser_that_remembers(deployment: Deployment, browser: Browser) -> None:
    portal = deployment.portals["proxy"]
    page = open_page(browser, deployment, "proxy")
    page.check("#remember")  # "Remember my homeserver on this device"
    body = logged_in(portal, home_with_token(deployment, page, DAVE_EMAIL, "dave"))
    assert body["user_id"] == "@dave:corp2.test"
    assert body["well_known"]["m.homeserver"]["base_url"] == deployment.hs["hs2"].base_url
    # The same browser again: no page, straight to corp2 and back to the client.
    deployment.provider.expect("dave")
    page.goto(redirect_url(deployment, "proxy"))
    assert page.url.startswith(deployment.client + "&loginToken=")
    token = parse_qs(urlsplit(page.url).query)["loginToken"][0]
    assert logged_in(portal, token)["user_id"] == "@dave:corp2.test"


def test_login_flows_list_the_shared_provider_once(deployment: Deployment) -> None:
    flows = requests.get(
        deployment.portals["redirect"].url + "/_matrix/client/v3/login", timeout=30
    )
    sso = next(f for f in flows.json()["flows"] if f["type"] == "m.login.sso")
    assert sorted(idp["id"] for idp in sso["identity_providers"]) == [SHARED, SOLO]


def test_the_page_as_a_person_sees_it(
    deployment: Deployment, browser: Browser, tmp_path: Path
) -> None:
    """On a phone-sized screen: the field is labelled, focused, and fits."""
    context = browser.new_context(viewport={"width": 360, "height": 640})
    page = context.new_page()
    page.goto(redirect_url(deployment, "redirect"))
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.evaluate("document.activeElement.id") == "identifier"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360
    page.screenshot(path=str(tmp_path / "sign-in.png"))
    context.close()


def test_a_first_sso_login_elsewhere_cannot_take_a_name_held_on_another_homeserver(
    deployment: Deployment, browser: Browser
) -> None:
    """Straight at corp1, not through the portal: the provider's dave would become a second
    dave there; corp1's module asks the portal, which knows dave lives on corp2."""
    page = new_context(browser).new_page()
    deployment.provider.expect("dave")
    hs1 = deployment.hs["hs1"]
    query = urlencode({"redirectUrl": deployment.client})
    answer = page.goto(f"{hs1.base_url}/_matrix/client/v3/login/sso/redirect/{SHARED}?{query}")
    assert answer is not None and answer.status == 400
    assert page.url.startswith(hs1.base_url + "/_synapse/client/oidc/callback?")
    assert "taken on another homeserver of this deployment" in page.inner_text("body")
    assert not account_exists(deployment, "hs1", "@dave:corp1.test")
