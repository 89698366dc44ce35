"""Single sign-on through the portal with two homeservers, each with its own CAS server.

Real Synapse processes (``sso1.test``, ``sso2.test``, both running the module), each with
CAS single sign-on against its own fake CAS server, behind real portal processes whose
``public_baseurl`` is their own address (the browser really comes back to them). The
portal config: identity provider ``cas`` is served by hs2; everything else (a redirect
without an identity provider, unknown tokens) goes to hs1, the default.

The browser leg is driven with plain HTTP requests that do not follow redirects, checking
each hop: portal -> homeserver -> CAS ticket -> homeserver -> portal callback -> client.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import attr
import pytest
import requests

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess
from tests.harness.clients import whoami
from tests.harness.constants import REPO_ROOT
from tests.harness.fake_cas import FakeCasServer
from tests.harness.sso import CALLBACK, LOGIN, cas_leg, get, start_sso, token_login
from tests.harness.synapse import module_entry, start_all

pytestmark = pytest.mark.integration


@attr.s(auto_attribs=True)
class SsoSetup:
    hs: dict[str, SynapseProcess]
    cas: dict[str, FakeCasServer]
    portals: dict[str, PortalProcess]
    """``redirect``, ``proxy``, and ``short`` (redirect mode, 1 s token TTL)."""


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoSetup]:
    with FakeCasServer() as cas1, FakeCasServer() as cas2:
        cas = {"hs1": cas1, "hs2": cas2}
        hs = {
            name: SynapseProcess(
                f"sso{name[-1]}.test",
                workdir=tmp_path_factory.mktemp(f"sso-{name}"),
                extra_pythonpath=[str(REPO_ROOT)],
            )
            for name in ("hs1", "hs2")
        }
        portals = {
            label: PortalProcess(
                {
                    "public_baseurl": "https://replaced.invalid",
                    "mode": "proxy" if label == "proxy" else "redirect",
                    "homeservers": {name: {"base_url": h.base_url} for name, h in hs.items()},
                    "default_homeserver": "hs1",
                    "discovery_cache_ttl": 0,
                    "sso": {
                        "identity_providers": {"cas": "hs2"},
                        "client_whitelist": ["http://127.0.0.1:1/"],
                        **({"token_ttl": 1} if label == "short" else {}),
                    },
                },
                tmp_path_factory.mktemp(f"sso-portal-{label}"),
            )
            for label in ("redirect", "proxy", "short")
        }
        for portal in portals.values():
            # The browser comes back to the portal: its public address is its real one.
            portal.config["public_baseurl"] = portal.url
        for name, h in hs.items():
            h.config.update(
                {
                    "modules": [module_entry(base_cs_url=h.base_url)],
                    # SSO endpoints redirect to the canonical public_baseurl first.
                    "public_baseurl": h.base_url + "/",
                    "cas_config": {"enabled": True, "server_url": cas[name].url},
                    # Synapse refuses outbound requests to loopback unless allowed.
                    "ip_range_whitelist": ["127.0.0.1"],
                    # The portals' callbacks get the token straight away (no "continue to
                    # your client?" page): the portal asks instead, for clients outside its
                    # own sso.client_whitelist.
                    "sso": {"client_whitelist": [p.url + CALLBACK for p in portals.values()]},
                }
            )
        try:
            start_all(list(hs.values()))
            for portal in portals.values():
                portal.start()
            yield SsoSetup(hs, cas, portals)
        finally:
            for portal in portals.values():
                portal.stop()
            for h in hs.values():
                h.stop()


def homeserver_leg(setup: SsoSetup, hs_name: str, location: str, user: str) -> str:
    """From the homeserver's SSO redirect through CAS and back: return the portal callback
    URL (with ``loginToken``) the homeserver sends the browser to."""
    return cas_leg(setup.hs[hs_name], setup.cas[hs_name], location, user)


def sso_login_token(
    setup: SsoSetup, portal: str, idp: str | None, hs_name: str, user: str
) -> tuple[str, str]:
    """The whole browser leg; return (login token, final client URL)."""
    p = setup.portals[portal]
    callback = homeserver_leg(setup, hs_name, start_sso(p, idp), user)
    assert callback.startswith(p.url + CALLBACK + "?")
    assert parse_qs(urlsplit(callback).query)["hs"] == [hs_name]
    to_client = get(callback)
    assert to_client.status_code == 302, to_client.text
    final: str = to_client.headers["Location"]
    query = parse_qs(urlsplit(final).query)
    assert final.startswith("http://127.0.0.1:1/client-after-sso?")
    assert query["state"] == ["abc"]
    return query["loginToken"][0], final


CASES = [
    pytest.param("cas", "hs2", "carol", id="idp-cas-served-by-hs2"),
    pytest.param(None, "hs1", "alice", id="no-idp-default-hs1"),
]


@pytest.mark.parametrize(("idp", "hs_name", "user"), CASES)
def test_redirect_mode_sends_the_token_login_to_its_issuer(
    sso: SsoSetup, idp: str | None, hs_name: str, user: str
) -> None:
    portal = sso.portals["redirect"]
    token, _ = sso_login_token(sso, "redirect", idp, hs_name, user)
    redirected = token_login(portal, token, allow_redirects=False)
    assert redirected.status_code == 307
    assert redirected.headers["Location"] == sso.hs[hs_name].base_url + LOGIN
    # The client follows the 307: the same POST, to the homeserver. (Asking the portal
    # again would not do: it forgets a token once it has routed it.)
    result = requests.post(
        redirected.headers["Location"], json={"type": "m.login.token", "token": token}, timeout=30
    )
    assert result.status_code == 200, result.text
    body = result.json()
    user_id = f"@{user}:sso{hs_name[-1]}.test"
    assert body["user_id"] == user_id
    assert body["base_cs_url"] == sso.hs[hs_name].base_url
    assert whoami(sso.hs[hs_name].base_url, body["access_token"]).json()["user_id"] == user_id


@pytest.mark.parametrize(("idp", "hs_name", "user"), CASES)
def test_proxy_mode_sends_the_token_login_to_its_issuer(
    sso: SsoSetup, idp: str | None, hs_name: str, user: str
) -> None:
    token, _ = sso_login_token(sso, "proxy", idp, hs_name, user)
    result = token_login(sso.portals["proxy"], token)
    assert result.status_code == 200, result.text
    assert result.history == []
    body = result.json()
    user_id = f"@{user}:sso{hs_name[-1]}.test"
    assert body["user_id"] == user_id
    assert body["well_known"]["m.homeserver"]["base_url"] == sso.hs[hs_name].base_url
    assert whoami(sso.hs[hs_name].base_url, body["access_token"]).json()["user_id"] == user_id
    other = "hs1" if hs_name == "hs2" else "hs2"
    assert whoami(sso.hs[other].base_url, body["access_token"]).status_code == 401
    assert f"login route=sso homeserver={hs_name} mode=proxy status=200" in (
        sso.portals["proxy"].logs()
    )


def test_a_used_token_is_forgotten(sso: SsoSetup) -> None:
    portal = sso.portals["redirect"]
    token, _ = sso_login_token(sso, "redirect", "cas", "hs2", "carol")
    first = token_login(portal, token, allow_redirects=False)
    assert first.headers["Location"].startswith(sso.hs["hs2"].base_url)
    again = token_login(portal, token, allow_redirects=False)
    assert again.headers["Location"] == sso.hs["hs1"].base_url + LOGIN  # the default


def test_an_expired_or_unknown_token_goes_to_the_default(sso: SsoSetup) -> None:
    portal = sso.portals["short"]  # sso.token_ttl: 1
    token, _ = sso_login_token(sso, "short", "cas", "hs2", "carol")
    time.sleep(1.2)
    late = token_login(portal, token, allow_redirects=False)
    assert late.headers["Location"] == sso.hs["hs1"].base_url + LOGIN
    # ...where hs1 refuses hs2's token (it is still valid on hs2: 2 minutes in Synapse).
    assert token_login(portal, token).status_code == 403
    unknown = token_login(portal, "syl_never_issued", allow_redirects=False)
    assert unknown.headers["Location"] == sso.hs["hs1"].base_url + LOGIN
    log = portal.logs()
    assert "login route=sso-default homeserver=hs1 mode=redirect status=307" in log


def test_tampered_or_unsigned_callbacks_are_refused(sso: SsoSetup) -> None:
    portal = sso.portals["redirect"]
    callback = homeserver_leg(sso, "hs2", start_sso(portal, "cas"), "carol")
    token = parse_qs(urlsplit(callback).query)["loginToken"][0]
    # Claim hs1 issued it (planting a token for a homeserver that did not issue it):
    planted = get(callback.replace("hs=hs2", "hs=hs1"))
    assert planted.status_code == 403
    assert planted.headers["Content-Type"] == "application/json"
    assert planted.json()["errcode"] == "M_FORBIDDEN"
    # Send the token to another site:
    stolen = get(callback.replace("to=http%3A%2F%2F127.0.0.1%3A1", "to=https%3A%2F%2Fevil"))
    assert stolen.status_code == 403
    assert "Location" not in stolen.headers
    # Without a signature:
    query = parse_qs(urlsplit(callback).query)
    del query["sig"]
    unsigned = get(f"{portal.url}{CALLBACK}?{urlencode(query, doseq=True)}")
    assert unsigned.status_code == 400
    assert unsigned.json()["errcode"] == "M_MISSING_PARAM"
    # None of these recorded anything: the token is unknown to the portal, so it goes to the
    # default homeserver (hs1), where hs2's token is refused.
    assert (
        token_login(portal, token, allow_redirects=False)
        .headers["Location"]
        .startswith(sso.hs["hs1"].base_url)
    )
    metrics = get(portal.url + "/metrics").text
    assert 'synapse_base_cs_url_portal_sso_callbacks_total{result="refused"} 3.0' in metrics


def test_a_client_outside_the_whitelist_gets_a_confirmation_page(sso: SsoSetup) -> None:
    portal = sso.portals["proxy"]
    elsewhere = "https://unlisted.example/app?x=1"
    callback = homeserver_leg(sso, "hs2", start_sso(portal, "cas", elsewhere), "carol")
    page = get(callback)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "<strong>unlisted.example</strong>" in page.text
    token = parse_qs(urlsplit(callback).query)["loginToken"][0]
    assert f'href="https://unlisted.example/app?x=1&amp;loginToken={token}"' in page.text
    # The token was recorded all the same: the login goes to hs2.
    result = token_login(portal, token)
    assert result.status_code == 200, result.text
    assert result.json()["user_id"] == "@carol:sso2.test"


def test_sso_redirect_refuses_a_missing_or_dangerous_redirect_url(sso: SsoSetup) -> None:
    portal = sso.portals["redirect"]
    missing = get(portal.url + "/_matrix/client/v3/login/sso/redirect")
    assert (missing.status_code, missing.json()["errcode"]) == (400, "M_MISSING_PARAM")
    script = get(
        portal.url + "/_matrix/client/v3/login/sso/redirect?redirectUrl=javascript%3Aalert(1)"
    )
    assert (script.status_code, script.json()["errcode"]) == (400, "M_INVALID_PARAM")
    unparseable = get(
        portal.url + "/_matrix/client/v3/login/sso/redirect?redirectUrl=http%3A%2F%2F%5B%3A%3A1"
    )
    assert (unparseable.status_code, unparseable.json()["errcode"]) == (400, "M_INVALID_PARAM")


def test_login_flows_list_the_identity_provider_from_the_homeserver_serving_it(
    sso: SsoSetup,
) -> None:
    flows = get(sso.portals["redirect"].url + LOGIN).json()["flows"]
    by_type = {f["type"]: f for f in flows}
    assert "m.login.token" in by_type
    # Both homeservers name their CAS provider "cas"; the portal sends "cas" to hs2, so the
    # provider listed is hs2's (and a redirect without an identity provider reaches hs1's).
    assert [idp["id"] for idp in by_type["m.login.sso"]["identity_providers"]] == ["cas"]


def test_no_token_in_the_portal_logs(sso: SsoSetup) -> None:
    token, final = sso_login_token(sso, "proxy", "cas", "hs2", "carol")
    result = token_login(sso.portals["proxy"], token)
    assert result.status_code == 200
    log = sso.portals["proxy"].logs()
    assert "sso callback homeserver=hs2 token=" in log
    for secret in (token, result.json()["access_token"], final):
        assert secret not in log
