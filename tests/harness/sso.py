"""A browser's single sign-on through the portal, hop by hop (redirects are checked, never
followed blindly): the portal's SSO redirect, the homeserver's identity provider (CAS or
OpenID Connect), the portal's callback, the client."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess
from tests.harness.fake_cas import FakeCasServer
from tests.harness.fake_oidc import FakeOidcProvider

#: The client's redirectUrl, with a query string of its own that must survive.
CLIENT = "http://127.0.0.1:1/client-after-sso?state=abc"
CALLBACK = "/_synapse_base_cs_url/sso/return"
LOGIN = "/_matrix/client/v3/login"


def get(url: str) -> requests.Response:
    return requests.get(url, allow_redirects=False, timeout=30)


def start_sso(portal: PortalProcess, idp: str | None, redirect_url: str = CLIENT) -> str:
    """The client sends the browser to the portal; return where the portal sends it."""
    path = "/_matrix/client/v3/login/sso/redirect" + (f"/{idp}" if idp else "")
    result = get(f"{portal.url}{path}?" + urlencode({"redirectUrl": redirect_url}))
    assert result.status_code == 302, result.text
    assert result.headers["Cache-Control"] == "no-store"
    location: str = result.headers["Location"]
    return location


def cas_leg(hs: SynapseProcess, cas: FakeCasServer, location: str, user: str) -> str:
    """From the homeserver's SSO redirect through CAS and back: return the portal callback
    URL (with ``loginToken``) the homeserver sends the browser to."""
    assert location.startswith(hs.base_url + "/_matrix/client/v3/login/sso/redirect")
    to_cas = get(location)
    assert to_cas.status_code == 302, to_cas.text
    cas_login = urlsplit(to_cas.headers["Location"])
    assert f"{cas_login.scheme}://{cas_login.netloc}{cas_login.path}" == cas.url + "/login"
    service = parse_qs(cas_login.query)["service"][0]
    assert service.startswith(hs.base_url + "/_matrix/client/r0/login/cas/ticket?")
    ticket = f"ST-{user}-{time.monotonic_ns()}"
    cas.issue_ticket(ticket, user)
    back = get(service + "&" + urlencode({"ticket": ticket}))
    assert back.status_code == 302, back.text
    callback: str = back.headers["Location"]
    return callback


def oidc_leg(hs: SynapseProcess, provider: FakeOidcProvider, location: str, user: str) -> str:
    """The same through an OpenID Connect provider. Synapse's session cookies are marked
    ``Secure``; a browser sends them to a loopback address over plain HTTP (a potentially
    trustworthy origin), so this browser does too."""
    assert location.startswith(hs.base_url + "/_matrix/client/v3/login/sso/redirect")
    to_provider = get(location)
    assert to_provider.status_code == 302, to_provider.text
    cookies = "; ".join(c.split(";", 1)[0] for c in to_provider.raw.headers.getlist("Set-Cookie"))
    authorize = to_provider.headers["Location"]
    assert authorize.startswith(provider.url + "/authorize?")
    provider.expect(user)
    to_synapse = get(authorize)
    assert to_synapse.status_code == 302, to_synapse.text
    callback_at_synapse = to_synapse.headers["Location"]
    assert callback_at_synapse.startswith(hs.base_url + "/_synapse/client/oidc/callback?")
    back = requests.get(
        callback_at_synapse, headers={"Cookie": cookies}, allow_redirects=False, timeout=30
    )
    assert back.status_code == 302, back.text
    callback: str = back.headers["Location"]
    return callback


def through_callback(portal: PortalProcess, callback: str) -> tuple[str, str]:
    """The browser at the portal's callback: return (login token, final client URL)."""
    assert callback.startswith(portal.url + CALLBACK + "?"), callback
    to_client = get(callback)
    assert to_client.status_code == 302, to_client.text
    final: str = to_client.headers["Location"]
    return parse_qs(urlsplit(final).query)["loginToken"][0], final


def token_login(portal: PortalProcess, token: str, **kwargs: Any) -> requests.Response:
    return requests.post(
        portal.url + LOGIN, json={"type": "m.login.token", "token": token}, timeout=30, **kwargs
    )
