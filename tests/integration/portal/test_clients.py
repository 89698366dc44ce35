"""Real clients log in through a real portal in every mode and land on the right homeserver."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from mautrix.client import ClientAPI
from nio import AsyncClient, LoginResponse
from yarl import URL

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from tests.harness.clients import new_device, password_body, session_from, whoami
from tests.harness.constants import CLIENT_IP, PASSWORD
from tests.harness.portal import Homeservers

pytestmark = pytest.mark.integration

MODES = ("redirect", "proxy", "auto")
Case = tuple[str, str, str]
# (what the user types, homeserver the routes pick, the user id it must end up as)
USERS = [
    pytest.param(("alice", "hs1", "@alice:hs1.test"), id="bare-localpart-default"),
    pytest.param(("@bob:hs1.test", "hs1", "@bob:hs1.test"), id="full-id-default"),
    pytest.param(("@h2_carol:hs2.test", "hs2", "@h2_carol:hs2.test"), id="full-id-route"),
    pytest.param(("h2_carol", "hs2", "@h2_carol:hs2.test"), id="localpart-route"),
    pytest.param(("@dave:hs2.test", "hs2", "@dave:hs2.test"), id="full-id-route-2"),
]
OTHER = {"hs1": "hs2", "hs2": "hs1"}


def check_landed(
    homeservers: Homeservers, hs_name: str, user_id: str, token: str, base_url: str | None
) -> None:
    """The token works on the chosen homeserver, and only there."""
    chosen = homeservers.by_name(hs_name)
    assert base_url == chosen.base_url
    assert whoami(chosen.base_url, token).json()["user_id"] == user_id
    assert whoami(homeservers.by_name(OTHER[hs_name]).base_url, token).status_code == 401


def portal_login_url(portal: PortalProcess, version: str = "v3") -> str:
    return f"{portal.url}/_matrix/client/{version}/login"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", USERS)
def test_requests(
    portals: dict[str, PortalProcess], homeservers: Homeservers, mode: str, case: Case
) -> None:
    user, hs_name, user_id = case
    result = session_from().post(portal_login_url(portals[mode]), json=password_body(user))
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["user_id"] == user_id
    assert body["well_known"]["m.homeserver"]["base_url"] == body["base_cs_url"]
    check_landed(homeservers, hs_name, user_id, body["access_token"], body["base_cs_url"])
    redirected = [r.status_code for r in result.history]
    assert redirected == ([] if mode == "proxy" else [307])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", USERS[::2])
def test_matrix_nio(
    portals: dict[str, PortalProcess], homeservers: Homeservers, mode: str, case: Case
) -> None:
    user, hs_name, user_id = case

    async def login() -> Any:
        client = AsyncClient(portals[mode].url, user, device_id=new_device())
        client.client_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(CLIENT_IP, 0))
        )
        try:
            return await client.login(PASSWORD)
        finally:
            await client.close()

    response = asyncio.run(login())
    assert isinstance(response, LoginResponse), response
    assert response.user_id == user_id
    # nio ignores base_cs_url / well_known, so it keeps talking to the portal: such clients
    # need a homeserver address configured out of band. The token is the chosen homeserver's.
    check_landed(
        homeservers, hs_name, user_id, response.access_token, homeservers.by_name(hs_name).base_url
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", USERS[1::2])
def test_mautrix_follows_well_known(
    portals: dict[str, PortalProcess], homeservers: Homeservers, mode: str, case: Case
) -> None:
    """mautrix switches to the login's ``well_known`` (what ``update_hs_url=True`` is for; in
    mautrix 0.21 that option stores a ``str`` where a ``yarl.URL`` is needed, so the switch is
    done here the same way): its next request (whoami) goes to the chosen homeserver."""
    user, hs_name, user_id = case

    async def login_and_whoami() -> tuple[str, str, str]:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(CLIENT_IP, 0)))
        client = ClientAPI(base_url=portals[mode].url, client_session=session)
        try:
            response = await client.login(
                identifier=user, password=PASSWORD, device_id=new_device()
            )
            client.api.base_url = URL(response.well_known.homeserver.base_url)
            me = await client.whoami()
            return str(client.api.base_url), str(me.user_id), response.access_token
        finally:
            await session.close()

    base_url, me, token = asyncio.run(login_and_whoami())
    assert me == user_id
    check_landed(homeservers, hs_name, user_id, token, base_url)


@pytest.mark.parametrize("mode", ("redirect", "proxy"))
def test_thirdparty_email_identifier(
    portals: dict[str, PortalProcess], homeservers: Homeservers, mode: str
) -> None:
    body = {
        "type": "m.login.password",
        "identifier": {
            "type": "m.id.thirdparty",
            "medium": "email",
            "address": "dave@dept2.example.com",
        },
        "password": PASSWORD,
    }
    result = session_from().post(portal_login_url(portals[mode]), json=body)
    assert result.status_code == 200, result.text
    check_landed(
        homeservers,
        "hs2",
        "@dave:hs2.test",
        result.json()["access_token"],
        result.json()["base_cs_url"],
    )


@pytest.mark.parametrize("version", ("r0", "v3"))
def test_legacy_user_field_and_r0(
    portals: dict[str, PortalProcess], homeservers: Homeservers, version: str
) -> None:
    body = {"type": "m.login.password", "user": "h2_carol", "password": PASSWORD}
    result = session_from().post(portal_login_url(portals["proxy"], version), json=body)
    assert result.status_code == 200, result.text
    assert result.json()["user_id"] == "@h2_carol:hs2.test"


def test_query_string_survives_the_redirect(portals: dict[str, PortalProcess]) -> None:
    result = session_from().post(
        portal_login_url(portals["redirect"]) + "?probe=1&x=%2F",
        json=password_body("h2_carol"),
        allow_redirects=False,
    )
    assert result.status_code == 307
    assert result.headers["Location"].endswith("/_matrix/client/v3/login?probe=1&x=%2F")


def test_auto_proxies_dart_and_redirects_others(
    portals: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    url = portal_login_url(portals["auto"])
    dart = session_from().post(
        url,
        json=password_body("h2_carol"),
        headers={"User-Agent": "Dart/3.5 (dart:io)"},
        allow_redirects=False,
    )
    assert dart.status_code == 200, dart.text
    assert dart.json()["base_cs_url"] == homeservers.hs2.base_url
    other = session_from().post(
        url,
        json=password_body("h2_carol"),
        headers={"User-Agent": "Mozilla/5.0"},
        allow_redirects=False,
    )
    assert other.status_code == 307
    assert other.headers["Location"] == f"{homeservers.hs2.base_url}/_matrix/client/v3/login"


def test_proxy_adds_base_cs_url_for_a_homeserver_without_the_module(
    portals: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    proxied = session_from().post(portal_login_url(portals["proxy"]), json=password_body("p_erin"))
    assert proxied.status_code == 200, proxied.text
    body = proxied.json()
    assert body["user_id"] == "@p_erin:plain.test"
    assert body["base_cs_url"] == homeservers.plain.base_url
    assert body["well_known"] == {"m.homeserver": {"base_url": homeservers.plain.base_url}}
    assert whoami(body["base_cs_url"], body["access_token"]).status_code == 200
    # A redirected login is answered by the homeserver itself: the portal cannot add them.
    redirected = session_from().post(
        portal_login_url(portals["redirect"]), json=password_body("p_erin")
    )
    assert redirected.status_code == 200
    assert "base_cs_url" not in redirected.json()


@pytest.mark.parametrize("mode", ("redirect", "proxy"))
def test_failed_login_passes_through(
    portals: dict[str, PortalProcess], homeservers: Homeservers, mode: str
) -> None:
    body = password_body("h2_carol")
    body["password"] = "wrong"
    via_portal = session_from().post(portal_login_url(portals[mode]), json=body)
    direct = session_from().post(f"{homeservers.hs2.base_url}/_matrix/client/v3/login", json=body)
    assert via_portal.status_code == direct.status_code == 403
    assert via_portal.json() == direct.json()
