"""``POST /login`` (``LoginHandler``) through the real site and wiring, the homeservers played
in memory: redirect and proxy mode, bodies the portal refuses, and a client that leaves
while its login is proxied (logged and counted 499, as nginx does)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from synapse_base_cs_url.portal.web.request import CORS_HEADERS
from tests.harness.requests import CLIENT_IP, InMemoryPortal, json_answer, portal_config

LOGIN = b"/_matrix/client/v3/login"
LOGINS = "synapse_base_cs_url_portal_logins_total"
REJECTED = "synapse_base_cs_url_portal_rejected_requests_total"
PORTAL_LOGGER = "synapse_base_cs_url.portal"
ZED = json.dumps(
    {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "zed"},
        "password": "pw",
    }
).encode()
ZED_LOGGED_IN = {"user_id": "@zed:two.example", "access_token": "syt_zed", "device_id": "DEV"}


def login_portal(**overrides: Any) -> InMemoryPortal:
    raw = portal_config(routes=[{"match": {"localpart": "zed"}, "homeserver": "hs2"}])
    raw.update(overrides)
    return InMemoryPortal(raw)


def logins(portal: InMemoryPortal, homeserver: str, mode: str, status: int) -> float:
    return portal.metric(LOGINS, homeserver=homeserver, mode=mode, status=str(status))


# --- redirect mode --------------------------------------------------------------------------


def test_redirect_mode_is_307_to_the_homeserver_with_cors_headers() -> None:
    portal = login_portal()
    channel = portal.request(
        b"POST", LOGIN + b"?device=1", ZED, headers=[(b"Origin", b"https://app.example")]
    )
    assert channel.code == 307
    assert channel.header(b"Location") == b"https://hs2.example/_matrix/client/v3/login?device=1"
    assert channel.header(b"Cache-Control") == b"no-store"
    for name, value in CORS_HEADERS:  # browsers follow a cross-origin 307 only with these
        assert channel.headers.getRawHeaders(name) == [value]
    assert channel.body == b""
    assert [hs.attempts for hs in portal.homeservers] == [[], []]  # nobody was contacted
    assert logins(portal, "hs2", "redirect", 307) == 1


def test_a_login_nobody_routes_is_redirected_to_the_default_homeserver() -> None:
    portal = login_portal()
    body = json.loads(ZED)
    body["identifier"]["user"] = "amy"
    channel = portal.request(b"POST", LOGIN, json.dumps(body).encode())
    assert channel.code == 307
    assert channel.header(b"Location") == b"https://hs1.example/_matrix/client/v3/login"
    assert logins(portal, "hs1", "redirect", 307) == 1


# --- proxy mode -----------------------------------------------------------------------------


def test_proxy_mode_relays_the_answer_with_base_cs_url_and_well_known() -> None:
    portal = login_portal(mode="proxy")
    portal.hs("hs2").on(
        b"POST", LOGIN, json_answer(200, ZED_LOGGED_IN, [(b"X-Synapse-Thing", b"1")])
    )
    channel = portal.request(b"POST", LOGIN, ZED, headers=[(b"User-Agent", b"Element/1.0")])
    assert channel.code == 200
    assert channel.json() == {
        **ZED_LOGGED_IN,
        "base_cs_url": "https://hs2.example",
        "well_known": {"m.homeserver": {"base_url": "https://hs2.example"}},
    }
    assert channel.header(b"Content-Length") == str(len(channel.body)).encode()
    assert channel.header(b"X-Synapse-Thing") == b"1"
    assert channel.headers.getRawHeaders(b"Access-Control-Allow-Origin") == [b"*"]
    (sent,) = portal.hs("hs2").requests
    assert sent.start_line == b"POST /_matrix/client/v3/login HTTP/1.1"
    assert sent.body == ZED  # the client's own body, byte for byte
    assert sent.header(b"X-Forwarded-For") == CLIENT_IP.encode()
    assert sent.header(b"User-Agent") == b"Element/1.0"
    assert portal.hs("hs1").requests == []
    assert logins(portal, "hs2", "proxy", 200) == 1


def test_proxy_mode_relays_a_refusal_as_it_is() -> None:
    portal = login_portal(mode="proxy")
    refusal = {"errcode": "M_FORBIDDEN", "error": "Invalid username or password"}
    portal.hs("hs2").on(b"POST", LOGIN, json_answer(403, refusal))
    channel = portal.request(b"POST", LOGIN, ZED)
    assert channel.code == 403
    assert channel.json() == refusal
    assert logins(portal, "hs2", "proxy", 403) == 1


def test_proxy_mode_with_an_unreachable_homeserver_is_502(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=PORTAL_LOGGER)
    portal = login_portal(mode="proxy")
    portal.hs("hs2").refusing = True
    channel = portal.request(b"POST", LOGIN, ZED)
    portal.advance(1)
    assert channel.code == 502
    assert channel.json()["error"].startswith("Homeserver 'hs2' is unreachable")
    assert "homeserver=hs2 mode=proxy status=502" in caplog.text
    assert logins(portal, "hs2", "proxy", 502) == 1


# --- bodies the portal refuses ------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""])
def test_a_body_that_is_not_json_is_400_m_not_json(body: bytes) -> None:
    portal = login_portal(mode="proxy")
    channel = portal.request(b"POST", LOGIN, body)
    assert channel.code == 400
    assert channel.json()["errcode"] == "M_NOT_JSON"
    assert portal.metric(REJECTED, errcode="M_NOT_JSON", status="400") == 1
    assert [hs.attempts for hs in portal.homeservers] == [[], []]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_max_body_size_is_413(framing: str) -> None:
    portal = login_portal(mode="proxy", max_body_size=100)
    body = b'{"type": "m.login.password", "password": "' + b"x" * 100 + b'"}'
    if framing == "chunked":
        channel = portal.connect()
        channel.send_head(b"POST", LOGIN, chunked=True)
        channel.send_chunk(body[:60]).send_chunk(body[60:]).send_chunk(b"")
    else:
        channel = portal.request(b"POST", LOGIN, body)
    assert channel.code == 413
    assert channel.json() == {
        "errcode": "M_TOO_LARGE",
        "error": "Request body is larger than this portal's 100 bytes",
    }
    assert portal.metric(REJECTED, errcode="M_TOO_LARGE", status="413") == 1
    assert [hs.attempts for hs in portal.homeservers] == [[], []]


# --- a client that leaves during a proxied login --------------------------------------------


@pytest.mark.parametrize("moment", ["waiting", "connecting"])
def test_a_client_leaving_during_a_proxied_login_is_499(
    moment: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``waiting``: the homeserver accepted the connection and has not answered;
    ``connecting``: the portal is still connecting to it (Twisted then fails the exchange
    with ``ConnectingCancelledError``, which must not be taken for the homeserver's 502)."""
    caplog.set_level(logging.INFO, logger=PORTAL_LOGGER)
    portal = login_portal(mode="proxy")
    hs2 = portal.hs("hs2")
    hs2.accepting = moment == "waiting"
    channel = portal.request(b"POST", LOGIN, ZED)
    if moment == "waiting":
        assert hs2.connection.requests[0].body == ZED
    else:
        assert hs2.connections == [] and len(hs2.pending) == 1
    channel.leave()
    portal.advance(1)
    if moment == "waiting":
        assert hs2.connection.released  # the login is not waited for any longer
    else:
        assert hs2.attempts[0].stoppedConnecting  # the connection attempt is given up
    assert channel.written == b""
    assert "homeserver=hs2 mode=proxy status=499" in caplog.text
    assert "problem='client closed the connection'" in caplog.text
    assert "status=502" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert logins(portal, "hs2", "proxy", 499) == 1
    assert logins(portal, "hs2", "proxy", 502) == 0


def test_a_login_target_a_homeserver_cannot_be_sent_is_400_naming_nothing_internal() -> None:
    """``POST /login?a=\\x80`` answered ``502 "...Invalid URI b'http://<proxy_url>/...'"``:
    the homeserver's internal address, to the client."""
    portal = InMemoryPortal(portal_config(mode="proxy"))
    body = b'{"type": "m.login.password", "user": "alice", "password": "pw"}'
    channel = portal.request(b"POST", b"/_matrix/client/v3/login?a=\x80", body)
    assert channel.code == 400, channel.body
    assert b"internal" not in channel.body
    assert all(hs.requests == [] for hs in portal.homeservers)


@pytest.mark.parametrize("moment", ["waiting", "connecting"])
def test_clients_leaving_never_mark_their_homeserver_down(moment: str) -> None:
    """Twisted wraps a caller's cancellation (ResponseNeverReceived, ConnectingCancelled):
    counted as the homeserver's failures, a few clients leaving marked a healthy one down."""
    portal = login_portal(mode="proxy")
    hs2 = portal.hs("hs2")
    hs2.accepting = moment == "waiting"
    for _ in range(5):
        channel = portal.request(b"POST", LOGIN, ZED)
        channel.leave()
        portal.advance(1)
    assert portal.metric("synapse_base_cs_url_portal_homeserver_up", homeserver="hs2") == 1
