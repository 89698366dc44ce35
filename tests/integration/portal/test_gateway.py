"""The client-server gateway (``client_api: proxy``) with real clients that ignore the login's
``well_known``: matrix-nio and mautrix log in through the portal and then do everything
through the portal's address; registration; unknown, made-up and malformed tokens; a
restarted portal; and the same through nginx asking the portal's decision endpoint.

Homeservers: ``hs1.test`` and ``hs2.test`` of the shared portal fixtures (with the module).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import requests
from mautrix.client import Client as MautrixClient
from nio import (
    AsyncClient,
    LoginResponse,
    LogoutResponse,
    RoomCreateResponse,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
)

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess
from tests.harness.clients import password_body
from tests.harness.constants import PASSWORD
from tests.harness.fake_servers import SlowHomeserver, UploadSink
from tests.harness.memory import PeakMemory
from tests.harness.metrics import CLIENT_API, DECISIONS, RESOLUTIONS, total
from tests.harness.nginx import NginxProcess
from tests.harness.portal import Homeservers

pytestmark = pytest.mark.integration

FIVE_MB = 5 * 1024 * 1024
WHOAMI = "/_matrix/client/v3/account/whoami"
USERS = {"hs1": ("gw_alice", "@gw_alice:hs1.test"), "hs2": ("h2_gw_bob", "@h2_gw_bob:hs2.test")}


def gateway_config(homeservers: Homeservers, mode: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "public_baseurl": "https://portal.example.com",
        "mode": mode,
        "client_api": "proxy",
        "homeservers": {
            "hs1": {"base_url": homeservers.hs1.base_url, "server_name": "hs1.test"},
            "hs2": {"base_url": homeservers.hs2.base_url, "server_name": "hs2.test"},
        },
        "routes": [
            {"name": "hs2-users", "match": {"user_id": "@.*:hs2\\.test"}, "homeserver": "hs2"},
            {"name": "hs2-localparts", "match": {"localpart": "h2_.*"}, "homeserver": "hs2"},
        ],
        "default_homeserver": "hs1",
        "discovery_cache_ttl": 2,
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def users(homeservers: Homeservers) -> dict[str, tuple[str, str]]:
    for name, (localpart, _) in USERS.items():
        homeservers.by_name(name).register_user(localpart, PASSWORD)
    return USERS


@pytest.fixture(scope="module")
def gateways(homeservers: Homeservers, start_portal: Any, users: Any) -> dict[str, PortalProcess]:
    return {
        mode: start_portal(f"gateway-{mode}", gateway_config(homeservers, mode))
        for mode in ("redirect", "proxy")
    }


def portal_login(portal: PortalProcess, user: str) -> str:
    """A password login through the portal (following its 307, if any): the access token."""
    login = requests.post(
        portal.url + "/_matrix/client/v3/login", json=password_body(user), timeout=30
    )
    assert login.status_code == 200, login.text
    token: str = login.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin_token(hs: SynapseProcess) -> str:
    localpart = "gwadmin" + secrets.token_hex(3)
    user = hs.register_user(localpart, PASSWORD, admin=True)
    token: str = hs.password_login(user, PASSWORD).json()["access_token"]
    return token


def room_on(hs: SynapseProcess, room_id: str) -> int:
    """Status of the admin API's view of ``room_id`` on ``hs`` (200: it is there)."""
    result = requests.get(
        f"{hs.base_url}/_synapse/admin/v1/rooms/{room_id}",
        headers=bearer(admin_token(hs)),
        timeout=30,
    )
    return result.status_code


def messages_on(hs: SynapseProcess, room_id: str, token: str) -> list[str]:
    result = requests.get(
        f"{hs.base_url}/_matrix/client/v3/rooms/{room_id}/messages?dir=b&limit=20",
        headers=bearer(token),
        timeout=30,
    )
    assert result.status_code == 200, result.text
    return [e["content"].get("body", "") for e in result.json()["chunk"]]


def media_download_path(base_url: str, mxc: str) -> str:
    """Authenticated media (spec v1.11, Synapse 1.110+) where the server has it, else the
    legacy path (Synapse 1.100)."""
    server, media_id = mxc.removeprefix("mxc://").split("/")
    versions = requests.get(base_url + "/_matrix/client/versions", timeout=30).json()["versions"]
    prefix = "/_matrix/client/v1/media" if "v1.11" in versions else "/_matrix/media/v3"
    return f"{prefix}/download/{server}/{media_id}"


def download_through(base_url: str, token: str, mxc: str) -> bytes:
    result = requests.get(
        base_url + media_download_path(base_url, mxc), headers=bearer(token), timeout=120
    )
    assert result.status_code == 200, result.text[:300]
    return result.content


def check_session_landed(
    homeservers: Homeservers, hs_name: str, room_id: str, token: str, text: str
) -> None:
    own = homeservers.by_name(hs_name)
    other = homeservers.by_name("hs2" if hs_name == "hs1" else "hs1")
    # Room ids of room version 12 name no server: ask both homeservers.
    assert room_on(own, room_id) == 200
    assert text in messages_on(own, room_id, token)
    assert room_on(other, room_id) == 404


@pytest.mark.parametrize("mode", ["redirect", "proxy"])
@pytest.mark.parametrize("hs_name", ["hs1", "hs2"])
def test_matrix_nio_through_the_portal_only(
    gateways: dict[str, PortalProcess], homeservers: Homeservers, mode: str, hs_name: str
) -> None:
    portal = gateways[mode]
    localpart, user_id = USERS[hs_name]
    text = f"hello from nio via {mode} {secrets.token_hex(4)}"
    payload = os.urandom(FIVE_MB)

    async def session() -> tuple[str, str, str]:
        client = AsyncClient(portal.url, localpart)
        try:
            login = await client.login(PASSWORD)
            assert isinstance(login, LoginResponse), login
            assert login.user_id == user_id
            assert client.homeserver == portal.url  # nio stays at the portal's address
            assert isinstance(await client.sync(timeout=1000), SyncResponse)
            room = await client.room_create(name="gateway test")
            assert isinstance(room, RoomCreateResponse), room
            sent = await client.room_send(
                room.room_id, "m.room.message", {"msgtype": "m.text", "body": text}
            )
            assert isinstance(sent, RoomSendResponse), sent
            upload, _ = await client.upload(
                lambda *_: payload, content_type="application/octet-stream", filesize=FIVE_MB
            )
            assert isinstance(upload, UploadResponse), upload
            assert upload.content_uri.startswith(f"mxc://{hs_name}.test/")
            # nio downloads from the authenticated media API only (Synapse 1.110+).
            assert download_through(portal.url, client.access_token, upload.content_uri) == payload
            token = client.access_token
            logout = await client.logout()
            assert isinstance(logout, LogoutResponse), logout
            return room.room_id, token, login.access_token
        finally:
            await client.close()

    room_id, token, _ = asyncio.run(session())
    check_logged_out_and_forgotten(portal, token)
    # The room and the message live on the user's own homeserver (checked there, with a
    # fresh login, since the test's one is gone), and nowhere else.
    fresh = homeservers.by_name(hs_name).password_login(localpart, PASSWORD).json()
    check_session_landed(homeservers, hs_name, room_id, fresh["access_token"], text)


@pytest.mark.parametrize("mode", ["redirect", "proxy"])
@pytest.mark.parametrize("hs_name", ["hs1", "hs2"])
def test_mautrix_through_the_portal_only(
    gateways: dict[str, PortalProcess], homeservers: Homeservers, mode: str, hs_name: str
) -> None:
    portal = gateways[mode]
    localpart, user_id = USERS[hs_name]
    text = f"hello from mautrix via {mode} {secrets.token_hex(4)}"
    payload = os.urandom(FIVE_MB)

    async def session() -> tuple[str, str]:
        http = aiohttp.ClientSession()
        client = MautrixClient(base_url=portal.url, client_session=http)
        try:
            login = await client.login(identifier=localpart, password=PASSWORD)
            assert str(login.user_id) == user_id
            assert str(client.api.base_url) == portal.url  # mautrix stays at the portal
            await client.sync(timeout=1000)
            room_id = await client.create_room(name="gateway test")
            await client.send_text(room_id, text)
            mxc = await client.upload_media(payload, mime_type="application/octet-stream")
            assert str(mxc).startswith(f"mxc://{hs_name}.test/")
            assert await client.download_media(mxc) == payload
            token = client.api.token
            await client.logout()
            return str(room_id), token
        finally:
            await http.close()

    room_id, token = asyncio.run(session())
    check_logged_out_and_forgotten(portal, token)
    fresh = homeservers.by_name(hs_name).password_login(localpart, PASSWORD).json()
    check_session_landed(homeservers, hs_name, room_id, fresh["access_token"], text)


def check_logged_out_and_forgotten(portal: PortalProcess, token: str) -> None:
    """After a logout through the portal: the token is dead, the portal forgot it (so it
    has to look it up again, and nobody knows it), and it never reached the portal's log."""
    unknown = total(portal.url, RESOLUTIONS, result="unknown")
    after = requests.get(portal.url + WHOAMI, headers=bearer(token), timeout=30)
    assert (after.status_code, after.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    assert total(portal.url, RESOLUTIONS, result="unknown") == unknown + 1
    assert token not in portal.logs()


def whoami_requests(hs: SynapseProcess) -> int:
    return len(re.findall(r'"GET /_matrix/client/v3/account/whoami', hs.log_text()))


def test_a_token_first_seen_by_a_restarted_portal_is_resolved(
    homeservers: Homeservers, start_portal: Any, users: Any
) -> None:
    first = start_portal("gw-before", gateway_config(homeservers, "proxy"))
    token = portal_login(first, "h2_gw_bob")
    # Learnt from the proxied login: no homeserver is asked.
    asked = whoami_requests(homeservers.hs1)
    assert requests.get(first.url + WHOAMI, headers=bearer(token), timeout=30).status_code == 200
    assert total(first.url, RESOLUTIONS, result="found") == 0
    first.stop()
    again = start_portal("gw-after", gateway_config(homeservers, "proxy"))
    me = requests.get(again.url + WHOAMI, headers=bearer(token), timeout=30)
    assert (me.status_code, me.json()["user_id"]) == (200, "@h2_gw_bob:hs2.test")
    assert total(again.url, RESOLUTIONS, result="found") == 1
    assert whoami_requests(homeservers.hs1) == asked + 1  # asked once, during the resolution
    # Remembered from then on.
    requests.get(again.url + WHOAMI, headers=bearer(token), timeout=30)
    assert total(again.url, RESOLUTIONS, result="found") == 1


def test_a_malformed_synapse_token_costs_no_homeserver_request(
    gateways: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    portal = gateways["proxy"]
    before = whoami_requests(homeservers.hs1) + whoami_requests(homeservers.hs2)
    made_up = "syt_Z3dfYWxpY2U_" + "a" * 20 + "_000000"
    result = requests.get(portal.url + WHOAMI, headers=bearer(made_up), timeout=30)
    assert (result.status_code, result.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    assert result.json()["soft_logout"] is False
    assert whoami_requests(homeservers.hs1) + whoami_requests(homeservers.hs2) == before
    assert total(portal.url, RESOLUTIONS, result="malformed") >= 1
    assert made_up not in portal.logs()


def test_a_burst_of_made_up_tokens_is_limited(homeservers: Homeservers, start_portal: Any) -> None:
    config = gateway_config(
        homeservers, "proxy", gateway={"resolve_burst": 3, "resolve_per_second": 0.2}
    )
    portal = start_portal("gw-limits", config)
    before = whoami_requests(homeservers.hs1) + whoami_requests(homeservers.hs2)
    statuses = []
    for _ in range(10):
        token = "made-up-" + secrets.token_hex(8)
        result = requests.get(
            portal.url + "/_matrix/client/v3/account/whoami?access_token=" + token, timeout=30
        )
        statuses.append(result.status_code)
        if result.status_code == 429:
            assert result.json()["errcode"] == "M_LIMIT_EXCEEDED"
            assert result.json()["retry_after_ms"] > 0
            assert int(result.headers["Retry-After"]) >= 1
    assert statuses[:3] == [401, 401, 401]
    assert set(statuses[3:]) == {429}
    # Three resolutions, each asking both homeservers once.
    assert whoami_requests(homeservers.hs1) + whoami_requests(homeservers.hs2) == before + 6


def test_registration_through_the_portal_lands_on_the_routed_homeserver(
    gateways: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    portal = gateways["redirect"]
    username = "h2_newbie_" + secrets.token_hex(3)
    url = portal.url + "/_matrix/client/v3/register"
    first = requests.post(url, json={"username": username, "password": PASSWORD}, timeout=30)
    assert first.status_code == 401, first.text
    session = first.json()["session"]
    done = requests.post(
        url,
        json={
            "username": username,
            "password": PASSWORD,
            "auth": {"type": "m.login.dummy", "session": session},
        },
        timeout=30,
    )
    assert done.status_code == 200, done.text
    assert done.json()["user_id"] == f"@{username}:hs2.test"
    token = done.json()["access_token"]
    me = requests.get(portal.url + WHOAMI, headers=bearer(token), timeout=30)
    assert me.json()["user_id"] == f"@{username}:hs2.test"
    assert total(portal.url, CLIENT_API, route="registration-session") >= 1


@pytest.mark.parametrize(
    ("mode", "first_reason"), [("proxy", "refresh-token"), ("redirect", "refresh-user")]
)
def test_refreshes_go_back_to_the_users_homeserver(
    gateways: dict[str, PortalProcess], mode: str, first_reason: str
) -> None:
    # A refresh carries no access token: only the refresh token in its body. A proxied login
    # taught the portal that token; a redirected one did not, and the portal routes by the
    # user a Synapse refresh token names.
    portal = gateways[mode]
    login = requests.post(
        portal.url + "/_matrix/client/v3/login",
        json={**password_body("h2_gw_bob"), "refresh_token": True},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    refresh = login.json()["refresh_token"]
    for reason in (first_reason, "refresh-token"):  # then learnt from the refresh itself
        before = total(portal.url, CLIENT_API, route=reason)
        result = requests.post(
            portal.url + "/_matrix/client/v3/refresh", json={"refresh_token": refresh}, timeout=30
        )
        assert result.status_code == 200, result.text
        assert total(portal.url, CLIENT_API, route=reason) == before + 1
        refresh = result.json()["refresh_token"]
        me = requests.get(
            portal.url + WHOAMI, headers=bearer(result.json()["access_token"]), timeout=30
        )
        assert me.json()["user_id"] == "@h2_gw_bob:hs2.test"


def test_the_decision_endpoint_answers_only_trusted_proxies(
    homeservers: Homeservers, start_portal: Any
) -> None:
    closed = start_portal(
        "gw-untrusted",
        gateway_config(homeservers, "proxy", gateway={"trusted_proxies": ["10.0.0.0/8"]}),
    )
    refused = requests.get(closed.url + "/_synapse_base_cs_url/route", timeout=30)
    assert (refused.status_code, refused.json()["errcode"]) == (403, "M_FORBIDDEN")


@pytest.mark.parametrize(
    ("uri", "hs_name"),
    [
        ("/_matrix/media/v3/download/hs2.test/abcdef", "hs2"),
        ("/_matrix/media/r0/thumbnail/hs1.test/abcdef?width=32&height=32", "hs1"),
        ("/_matrix/client/v3/profile/%40h2_gw_bob%3Ahs2.test", "hs2"),
        ("/_matrix/client/v3/publicRooms", "hs1"),
    ],
)
def test_decisions_for_requests_without_a_token(
    gateways: dict[str, PortalProcess], homeservers: Homeservers, uri: str, hs_name: str
) -> None:
    decision = requests.get(
        gateways["proxy"].url + "/_synapse_base_cs_url/route",
        headers={"X-Original-URI": uri, "X-Original-Method": "GET"},
        timeout=30,
    )
    assert decision.status_code == 200
    assert decision.headers["X-Upstream"] == homeservers.by_name(hs_name).base_url
    assert decision.headers["X-Accel-Expires"] == "0"


@pytest.fixture(scope="module")
def nginx(gateways: dict[str, PortalProcess]) -> Iterator[NginxProcess]:
    proc = NginxProcess(gateways["redirect"].port).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_the_same_session_through_nginx_and_the_decision_endpoint(
    nginx: NginxProcess, gateways: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    portal = gateways["redirect"]
    localpart, _ = USERS["hs2"]

    async def session() -> tuple[str, str]:
        client = AsyncClient(nginx.url, localpart)
        try:
            login = await client.login(PASSWORD)  # nginx -> portal -> 307 -> hs2
            assert isinstance(login, LoginResponse), login
            room = await client.room_create(name="via nginx")
            assert isinstance(room, RoomCreateResponse), room
            await client.room_send(
                room.room_id, "m.room.message", {"msgtype": "m.text", "body": "via nginx"}
            )
            payload = os.urandom(FIVE_MB)
            upload, _ = await client.upload(
                lambda *_: payload, content_type="application/octet-stream", filesize=FIVE_MB
            )
            assert isinstance(upload, UploadResponse), upload
            assert download_through(nginx.url, client.access_token, upload.content_uri) == payload
            token = client.access_token
            assert isinstance(await client.logout(), LogoutResponse)
            return room.room_id, token
        finally:
            await client.close()

    carried = total(portal.url, CLIENT_API)
    decided = total(portal.url, DECISIONS)
    room_id, token = asyncio.run(session())
    # The traffic went through nginx straight to hs2: the portal only decided.
    access = nginx.access_log()
    assert "POST /_matrix/media/v3/upload" in access or "POST /_matrix/media/r0/upload" in access
    assert total(portal.url, CLIENT_API) == carried
    # Five requests with the session's token (room, message, upload, download, logout):
    # nginx asked once, then used its cached decision.
    assert 1 <= total(portal.url, DECISIONS) - decided <= 2
    after = requests.get(nginx.url + WHOAMI, headers=bearer(token), timeout=30)
    assert after.status_code == 401
    assert after.json()["errcode"] == "M_UNKNOWN_TOKEN"
    fresh = homeservers.hs2.password_login(localpart, PASSWORD).json()
    check_session_landed(homeservers, "hs2", room_id, fresh["access_token"], "via nginx")


def test_registrations_and_refreshes_through_nginx_reach_the_users_homeserver(
    nginx: NginxProcess, gateways: dict[str, PortalProcess]
) -> None:
    # Their homeserver is in their body: nginx hands them to the portal, not the decision.
    username = "h2_nginx_" + secrets.token_hex(3)
    url = nginx.url + "/_matrix/client/v3/register"
    first = requests.post(url, json={"username": username, "password": PASSWORD}, timeout=30)
    assert first.status_code == 401, first.text
    done = requests.post(
        url,
        json={
            "username": username,
            "password": PASSWORD,
            "refresh_token": True,
            "auth": {"type": "m.login.dummy", "session": first.json()["session"]},
        },
        timeout=30,
    )
    assert done.status_code == 200, done.text
    assert done.json()["user_id"] == f"@{username}:hs2.test"
    refreshed = requests.post(
        nginx.url + "/_matrix/client/v3/refresh",
        json={"refresh_token": done.json()["refresh_token"]},
        timeout=30,
    )
    assert refreshed.status_code == 200, refreshed.text
    me = requests.get(
        nginx.url + WHOAMI, headers=bearer(refreshed.json()["access_token"]), timeout=30
    )
    assert me.json()["user_id"] == f"@{username}:hs2.test"


def test_50_mb_up_and_down_through_the_portal_keeps_its_memory_flat(
    gateways: dict[str, PortalProcess], users: Any
) -> None:
    portal = gateways["redirect"]
    token = portal_login(portal, "gw_alice")
    size, chunk = 50 * 1024 * 1024, 256 * 1024
    block = os.urandom(chunk)
    digest = hashlib.sha256(block * (size // chunk)).hexdigest()
    requests.get(portal.url + WHOAMI, headers=bearer(token), timeout=30)  # token known, warm
    memory = PeakMemory(portal.pid)
    try:
        growth, got, received = transfer(portal, token, block, size)
    finally:
        memory.stop()
    growth = memory.peak - memory.baseline
    assert got == size
    assert received == digest
    assert growth < 10 * 1024 * 1024, f"the portal grew by {growth / 1e6:.1f} MB"


class RepeatedFile:
    """A file of ``size`` bytes (``block`` over and over) that is read as it is sent, with a
    length, so that the upload has a Content-Length (Synapse requires one) and streams."""

    def __init__(self, block: bytes, size: int) -> None:
        self.block, self.left, self.at = block, size, 0

    def __len__(self) -> int:
        return self.left

    def read(self, n: int = -1) -> bytes:
        room = len(self.block) - self.at
        take = min(self.left, room if n < 0 else min(n, room))
        data = self.block[self.at : self.at + take]
        self.at = (self.at + take) % len(self.block)
        self.left -= take
        return data


def transfer(portal: PortalProcess, token: str, block: bytes, size: int) -> tuple[int, int, str]:
    upload = requests.post(
        portal.url + "/_matrix/media/v3/upload?filename=big.bin",
        data=RepeatedFile(block, size),
        headers={**bearer(token), "Content-Type": "application/octet-stream"},
        timeout=300,
    )
    assert upload.status_code == 200, upload.text
    path = media_download_path(portal.url, upload.json()["content_uri"])
    received = hashlib.sha256()
    got = 0
    with requests.get(
        portal.url + path,
        headers=bearer(token),
        stream=True,
        timeout=300,
    ) as download:
        assert download.status_code == 200
        for data in download.iter_content(64 * 1024):
            received.update(data)
            got += len(data)
            time.sleep(0.002)  # a slow reader: the portal must wait, not buffer the file
    return 0, got, received.hexdigest()


def test_a_sync_may_take_as_long_as_the_client_asked(start_portal: Any) -> None:
    slow = SlowHomeserver(delay=2.0)
    try:
        portal = start_portal(
            "gw-long-poll",
            {
                "public_baseurl": "https://portal.example.com",
                "client_api": "proxy",
                "homeservers": {"slow": {"base_url": slow.url}},
                "default_homeserver": "slow",
                "timeouts": {"client_api": 1, "long_poll_margin": 1},
            },
        )
        # A long poll of 2 s (+ 1 s margin) outlasts timeouts.client_api.
        sync = requests.get(portal.url + "/_matrix/client/v3/sync?timeout=2000", timeout=30)
        assert sync.status_code == 200, sync.text
        # A short one, or any other request, has timeouts.client_api.
        started = time.monotonic()
        for path in ("/_matrix/client/v3/sync?timeout=0", "/_matrix/client/v3/publicRooms"):
            late = requests.get(portal.url + path, timeout=30)
            assert late.status_code == 504, late.text
            assert late.json()["errcode"] == "M_UNKNOWN"
            assert "did not answer within 1s" in late.json()["error"]
        assert time.monotonic() - started < 3.5  # each gave up after 1 s, not 2
    finally:
        slow.close()


@pytest.fixture
def sink() -> Iterator[UploadSink]:
    sink = UploadSink()
    try:
        yield sink
    finally:
        sink.close()


def sink_portal(start_portal: Any, sink: UploadSink, name: str, **extra: Any) -> PortalProcess:
    """A gateway portal whose only homeserver is ``sink``."""
    config = {
        "public_baseurl": "https://portal.example.com",
        "client_api": "proxy",
        "homeservers": {"sink": {"base_url": sink.url}},
        "default_homeserver": "sink",
        **extra,
    }
    portal: PortalProcess = start_portal(name, config)
    return portal


def test_a_chunked_upload_past_the_limit_is_refused_mid_stream(
    start_portal: Any, sink: UploadSink
) -> None:
    portal = sink_portal(start_portal, sink, "gw-limit", gateway={"max_upload_size": 300_000})
    chunk = b"y" * 65536
    # No Content-Length: the limit is only known to be passed part-way through.
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(16)) + b"0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", portal.port), timeout=20) as client:
        client.sendall(
            b"POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: portal\r\n"
            b"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n" + body
        )
        answer = b""
        while data := client.recv(65536):
            answer += data
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert json.loads(payload)["errcode"] == "M_TOO_LARGE"
    assert sink.closed_early.wait(10), "the homeserver was left waiting for the rest"
    assert sink.received < 16 * 65536


def test_what_the_homeserver_is_told_about_the_client(start_portal: Any, sink: UploadSink) -> None:
    portal = sink_portal(start_portal, sink, "gw-headers")
    requests.get(
        portal.url + "/_matrix/client/v3/publicRooms",
        headers={
            "Connection": "keep-alive, X-Private",
            "X-Private": "for the portal only",
            "Keep-Alive": "timeout=5",
            "X-Forwarded-For": "203.0.113.9",  # made up by the client: replaced
            "User-Agent": "gateway-test/1",
        },
        timeout=30,
    )
    head = sink.heads[-1].decode().lower()
    assert head.startswith("get /_matrix/client/v3/publicrooms http/1.1")
    assert "\r\nx-forwarded-for: 127.0.0.1" in head
    assert "\r\nx-forwarded-proto: http" in head
    assert "203.0.113.9" not in head
    assert "x-private" not in head and "keep-alive: timeout" not in head
    assert "\r\nuser-agent: gateway-test/1" in head


def test_a_client_leaving_mid_upload_releases_the_homeserver(
    start_portal: Any, sink: UploadSink
) -> None:
    portal = sink_portal(start_portal, sink, "gw-sink")
    client = socket.create_connection(("127.0.0.1", portal.port), timeout=10)
    client.sendall(
        b"POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: portal\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n"
    )
    client.sendall(b"x" * 1_000_000)
    deadline = time.monotonic() + 10
    while sink.received < 100_000:  # the body is streaming through
        assert time.monotonic() < deadline, "nothing reached the homeserver"
        time.sleep(0.02)
    client.close()  # the client gives up half-way
    assert sink.closed_early.wait(10), "the portal kept the homeserver waiting"
