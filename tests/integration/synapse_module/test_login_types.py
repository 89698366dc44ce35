"""Every login type gets base_cs_url and a consistent well_known, on a real Synapse."""

from __future__ import annotations

import time
from typing import Any

import pytest
from authlib.jose import jwt

from synapse_base_cs_url._dev.throwaway_synapse import HttpResult, JsonDict, SynapseProcess
from tests.harness.constants import AS_TOKEN, CUSTOM_LOGIN_SECRET, JWT_SECRET, PASSWORD
from tests.in_synapse.auth_provider import LOGIN_TYPE as CUSTOM_LOGIN_TYPE

pytestmark = pytest.mark.integration

CONFIGURED_URL = "https://cs.example.com"
LOGIN_PATHS = [
    "/_matrix/client/v3/login",
    "/_matrix/client/r0/login",
    "/_matrix/client/api/v1/login",
]


def assert_routed(result: HttpResult, user_id: str) -> JsonDict:
    assert result.status == 200, result
    body: JsonDict = result.json()
    assert body["user_id"] == user_id
    assert body["base_cs_url"] == CONFIGURED_URL
    assert body["well_known"]["m.homeserver"]["base_url"] == CONFIGURED_URL
    # Synapse's other well_known content is kept.
    assert body["well_known"]["m.identity_server"] == {"base_url": "https://identity.example.com"}
    assert body["well_known"]["org.example.custom"] == {"kept": True}
    return body


def whoami(hs: SynapseProcess, access_token: str) -> str:
    result = hs.get(
        "/_matrix/client/v3/account/whoami", headers={"Authorization": f"Bearer {access_token}"}
    )
    assert result.status == 200, result
    user_id: str = result.json()["user_id"]
    return user_id


@pytest.mark.parametrize("path", LOGIN_PATHS)
def test_password_login_with_identifier_on_every_api_version(
    module_hs: SynapseProcess, path: str
) -> None:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": PASSWORD,
    }
    login = assert_routed(module_hs.post(path, body), "@alice:twin.test")
    # The access token is real: the login went through Synapse untouched otherwise.
    assert whoami(module_hs, login["access_token"]) == "@alice:twin.test"


def test_password_login_with_full_user_id(module_hs: SynapseProcess) -> None:
    assert_routed(module_hs.password_login("@alice:twin.test", PASSWORD), "@alice:twin.test")


def test_password_login_legacy_user_field(module_hs: SynapseProcess) -> None:
    body = {"type": "m.login.password", "user": "alice", "password": PASSWORD}
    assert_routed(module_hs.post("/_matrix/client/r0/login", body), "@alice:twin.test")


def test_token_login_from_existing_session(module_hs: SynapseProcess) -> None:
    """m.login.token: the same code path SSO logins finish on."""
    first = module_hs.password_login("alice", PASSWORD).json()
    token = module_hs.post(
        "/_matrix/client/v1/login/get_token",
        {},
        headers={"Authorization": f"Bearer {first['access_token']}"},
    )
    assert token.status == 200, token
    body = {"type": "m.login.token", "token": token.json()["login_token"]}
    login = assert_routed(module_hs.post("/_matrix/client/v3/login", body), "@alice:twin.test")
    assert login["access_token"] != first["access_token"]


def test_application_service_login(module_hs: SynapseProcess) -> None:
    auth = {"Authorization": f"Bearer {AS_TOKEN}"}
    registered = module_hs.post(
        "/_matrix/client/v3/register",
        {"type": "m.login.application_service", "username": "bridge_bob"},
        headers=auth,
    )
    assert registered.status in (200, 400), registered  # 400: already registered by a rerun
    body = {
        "type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": "bridge_bob"},
    }
    assert_routed(
        module_hs.post("/_matrix/client/v3/login", body, headers=auth), "@bridge_bob:twin.test"
    )


def make_jwt(subject: str, secret: str = JWT_SECRET) -> str:
    claims: dict[str, Any] = {"sub": subject, "exp": int(time.time()) + 300}
    token: bytes = jwt.encode({"alg": "HS256"}, claims, secret)
    return token.decode()


def test_jwt_login(module_hs: SynapseProcess) -> None:
    body = {"type": "org.matrix.login.jwt", "token": make_jwt("jwtuser")}
    assert_routed(module_hs.post("/_matrix/client/v3/login", body), "@jwtuser:twin.test")


def test_login_accepted_by_another_modules_auth_provider(module_hs: SynapseProcess) -> None:
    flows = module_hs.get("/_matrix/client/v3/login").json()["flows"]
    assert {"type": CUSTOM_LOGIN_TYPE} in flows
    body = {
        "type": CUSTOM_LOGIN_TYPE,
        "identifier": {"type": "m.id.user", "user": "alice"},
        "secret": CUSTOM_LOGIN_SECRET,
    }
    assert_routed(module_hs.post("/_matrix/client/v3/login", body), "@alice:twin.test")


def test_control_homeserver_has_no_base_cs_url(control_hs: SynapseProcess) -> None:
    result = control_hs.password_login("alice", PASSWORD)
    assert result.status == 200, result
    body = result.json()
    assert "base_cs_url" not in body
    assert body["well_known"]["m.homeserver"]["base_url"] == "https://public.example.com/"
