"""What clients ask before logging in, CORS, health, metrics, SSO, and the portal's log."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from tests.harness.clients import password_body, session_from
from tests.harness.constants import PASSWORD
from tests.harness.portal import Homeservers

pytestmark = pytest.mark.integration

CORS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
)


def direct(homeservers: Homeservers, path: str) -> list[dict]:
    return [hs.get(path).json() for hs in (homeservers.hs1, homeservers.hs2, homeservers.plain)]


def test_versions_are_what_every_homeserver_supports(
    portals: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    result = requests.get(f"{portals['redirect'].url}/_matrix/client/versions", timeout=30)
    assert result.status_code == 200
    answers = direct(homeservers, "/_matrix/client/versions")
    common = set.intersection(*(set(a["versions"]) for a in answers))
    assert result.json()["versions"] == [v for v in answers[0]["versions"] if v in common]
    assert "v1.1" in result.json()["versions"]
    # Listed only if every homeserver lists it, true only if all say true. (The loop this
    # replaces checked the true entries only, and nothing at all if the map was empty.)
    listed = [set(a["unstable_features"]) for a in answers]
    expected = {
        name: all(a["unstable_features"][name] is True for a in answers)
        for name in set.intersection(*listed)
    }
    assert expected
    assert result.json()["unstable_features"] == expected
    assert result.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("version", ["r0", "v3"])
def test_login_flows_offered_by_every_homeserver(
    portals: dict[str, PortalProcess], homeservers: Homeservers, version: str
) -> None:
    path = f"/_matrix/client/{version}/login"
    result = requests.get(portals["proxy"].url + path, timeout=30)
    assert result.status_code == 200
    types = [f["type"] for f in result.json()["flows"]]
    assert "m.login.password" in types
    every = set.intersection(*({f["type"] for f in a["flows"]} for a in direct(homeservers, path)))
    assert set(types) - {"m.login.token", "m.login.sso"} <= every


def test_well_known_points_at_the_portal(portals: dict[str, PortalProcess]) -> None:
    result = requests.get(f"{portals['auto'].url}/.well-known/matrix/client", timeout=30)
    assert result.status_code == 200
    assert result.json() == {"m.homeserver": {"base_url": "https://portal.example.com"}}
    assert result.headers["Content-Type"] == "application/json"


def test_health(portals: dict[str, PortalProcess]) -> None:
    result = requests.get(f"{portals['proxy'].url}/health", timeout=30)
    assert (result.status_code, result.text) == (200, "OK")


@pytest.mark.parametrize("path", ["/_matrix/client/v3/login", "/_matrix/client/versions"])
def test_preflight_matches_synapse(
    portals: dict[str, PortalProcess], homeservers: Homeservers, path: str
) -> None:
    headers = {
        "Origin": "https://app.element.io",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    ours = requests.options(portals["redirect"].url + path, headers=headers, timeout=30)
    synapse = requests.options(homeservers.hs1.base_url + path, headers=headers, timeout=30)
    assert ours.status_code == synapse.status_code == 204
    for name in CORS:
        assert ours.headers[name] == synapse.headers[name], name


def test_the_307_itself_carries_cors_headers(
    portals: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    result = requests.post(
        f"{portals['redirect'].url}/_matrix/client/v3/login",
        json=password_body("alice"),
        headers={"Origin": "https://app.element.io"},
        allow_redirects=False,
        timeout=30,
    )
    assert result.status_code == 307
    synapse = requests.options(f"{homeservers.hs1.base_url}/_matrix/client/v3/login", timeout=30)
    for name in CORS:
        assert result.headers[name] == synapse.headers[name], name


def test_sso_redirect_and_unknown_login_token_go_to_the_default_sso_homeserver(
    portals: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    path = "/_matrix/client/v3/login/sso/redirect"
    result = requests.get(
        portals["proxy"].url + path + "?redirectUrl=https%3A%2F%2Fapp.example%2F",
        allow_redirects=False,
        timeout=30,
    )
    assert result.status_code == 302
    location = urlsplit(result.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        homeservers.hs1.base_url + path
    )
    callback = parse_qs(location.query)["redirectUrl"][0]
    assert callback.startswith("https://portal.example.com/_synapse_base_cs_url/sso/return?")
    assert parse_qs(urlsplit(callback).query)["to"] == ["https://app.example/"]
    token_login = {"type": "m.login.token", "token": "syt_not_a_real_login_token"}
    redirected = requests.post(
        f"{portals['redirect'].url}/_matrix/client/v3/login",
        json=token_login,
        allow_redirects=False,
        timeout=30,
    )
    assert redirected.headers["Location"].startswith(homeservers.hs1.base_url)
    proxied = requests.post(
        f"{portals['proxy'].url}/_matrix/client/v3/login", json=token_login, timeout=30
    )
    assert proxied.status_code == 403  # hs1's own answer to a bad token
    assert proxied.json()["errcode"] == "M_FORBIDDEN"


def test_metrics_count_logins_by_homeserver_mode_and_status(
    portals: dict[str, PortalProcess],
) -> None:
    portal = portals["auto"]
    session_from().post(f"{portal.url}/_matrix/client/v3/login", json=password_body("h2_carol"))
    session_from().post(
        f"{portal.url}/_matrix/client/v3/login",
        json=password_body("alice"),
        headers={"User-Agent": "Dart/3.5 (dart:io)"},
    )
    text = requests.get(f"{portal.url}/metrics", timeout=30).text
    logins = "synapse_base_cs_url_portal_logins_total"
    assert re.search(logins + r'\{homeserver="hs2",mode="redirect",status="307"\} [1-9]', text)
    assert re.search(logins + r'\{homeserver="hs1",mode="proxy",status="200"\} [1-9]', text)
    assert (
        'synapse_base_cs_url_portal_login_duration_seconds_bucket{le="0.005",mode="redirect"}'
        in text
    )


def test_log_has_one_line_per_login_and_no_secrets(portals: dict[str, PortalProcess]) -> None:
    portal = portals["proxy"]
    result = session_from().post(
        f"{portal.url}/_matrix/client/v3/login", json=password_body("@h2_carol:hs2.test")
    )
    token = result.json()["access_token"]
    session_from().post(
        f"{portal.url}/_matrix/client/v3/login",
        json={"type": "m.login.token", "token": "syt_secret_login_token"},
    )
    log = portal.logs()
    assert re.search(
        r"login route=hs2-users homeserver=hs2 mode=proxy status=200 duration=[0-9.]+ms", log
    )
    assert re.search(
        r"login route=sso-default homeserver=hs1 mode=proxy status=403 duration=[0-9.]+ms "
        r"token=[0-9a-f]{12}\n",
        log,
    )
    for secret in (PASSWORD, token, "syt_secret_login_token"):
        assert secret not in log
