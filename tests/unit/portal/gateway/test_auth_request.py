"""The decision endpoint for nginx's ``auth_request`` (``AuthRequestEndpoint``) through the
real site and wiring: who may ask, which upstream it names, and for how long nginx may keep
the decision."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.harness.requests import (
    CLIENT_IP,
    LOCAL_IP,
    FakeChannel,
    InMemoryPortal,
    json_answer,
    portal_config,
)

ROUTE = b"/_synapse_base_cs_url/route"
DECISIONS = "synapse_base_cs_url_portal_route_decisions_total"
WHOAMI = b"/_matrix/client/v3/account/whoami"
SYNC = b"/_matrix/client/v3/sync"
CACHE_TTL = 25
PORTAL_URL = b"http://127.0.0.1:8448"
HS1_URL = b"http://hs1.internal:8001"
HS2_URL = b"http://hs2.internal:8002"


def decider(**overrides: Any) -> InMemoryPortal:
    raw = portal_config(
        mode="proxy",
        client_api="proxy",
        routes=[{"match": {"localpart": "zed"}, "homeserver": "hs2"}],
        listen={"host": "0.0.0.0", "port": 8448},
        gateway={"decision_cache_ttl": CACHE_TTL},
    )
    raw.update(overrides)
    return InMemoryPortal(raw)


def ask(
    portal: InMemoryPortal,
    uri: bytes,
    *,
    method: bytes = b"GET",
    token: str | None = None,
    client_ip: str = LOCAL_IP,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> FakeChannel:
    """nginx's subrequest for a client's ``method`` ``uri``."""
    headers = [(b"X-Original-URI", uri), (b"X-Original-Method", method), *extra]
    if token is not None:
        headers.append((b"Authorization", f"Bearer {token}".encode()))
    return portal.request(b"GET", ROUTE, headers=headers, client_ip=client_ip)


def decision(channel: FakeChannel) -> tuple[int, bytes | None, bytes | None]:
    assert channel.answered
    return channel.code, channel.header(b"X-Upstream"), channel.header(b"X-Accel-Expires")


def login_zed(portal: InMemoryPortal) -> None:
    """A proxied login through the portal: its token is learnt for hs2 (zed's routes)."""
    portal.hs("hs2").on(
        b"POST",
        b"/_matrix/client/v3/login",
        json_answer(200, {"user_id": "@zed:two.example", "access_token": "tok_zed"}),
    )
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "zed"},
        "password": "pw",
    }
    channel = portal.request(b"POST", b"/_matrix/client/v3/login", json.dumps(body).encode())
    assert channel.code == 200


@pytest.mark.parametrize(
    "extra",
    [(), ((b"X-Forwarded-For", LOCAL_IP.encode()),)],
    ids=["plain", "claiming-to-be-local"],
)
def test_an_untrusted_peer_is_403_m_forbidden(extra: tuple[tuple[bytes, bytes], ...]) -> None:
    portal = decider()
    login_zed(portal)
    channel = ask(portal, SYNC, token="tok_zed", client_ip=CLIENT_IP, extra=extra)
    assert channel.code == 403
    assert channel.json() == {
        "errcode": "M_FORBIDDEN",
        "error": "Only the portal's trusted proxies may ask",
    }
    assert channel.header(b"X-Upstream") is None
    assert portal.metric(DECISIONS, homeserver="hs2", route="token") == 0


def test_trusted_proxies_is_who_may_ask() -> None:
    portal = decider(gateway={"trusted_proxies": ["10.0.0.0/8"]})
    assert ask(portal, SYNC, client_ip="10.1.2.3").code == 200
    assert ask(portal, SYNC, client_ip=LOCAL_IP).code == 403


def test_a_learnt_token_names_its_homeserver_and_may_be_cached() -> None:
    portal = decider()
    login_zed(portal)
    channel = ask(portal, SYNC + b"?timeout=30000", token="tok_zed")
    assert decision(channel) == (200, HS2_URL, str(CACHE_TTL).encode())
    assert channel.body == b""
    # Known: nobody was asked whoami.
    assert portal.hs("hs1").requests == []
    assert portal.hs("hs2").paths() == [b"/_matrix/client/v3/login"]
    assert portal.metric(DECISIONS, homeserver="hs2", route="token") == 1


def test_a_token_in_the_query_string_counts_too() -> None:
    portal = decider()
    login_zed(portal)
    channel = ask(portal, SYNC + b"?access_token=tok_zed")
    assert decision(channel) == (200, HS2_URL, str(CACHE_TTL).encode())


def test_a_token_resolved_by_asking_names_that_homeserver_and_may_be_cached() -> None:
    portal = decider()
    portal.hs("hs1").on(b"GET", WHOAMI, json_answer(401, {"errcode": "M_UNKNOWN_TOKEN"}))
    portal.hs("hs2").on(b"GET", WHOAMI, json_answer(200, {"user_id": "@amy:two.example"}))
    channel = ask(portal, SYNC, token="tok_amy")
    assert decision(channel) == (200, HS2_URL, str(CACHE_TTL).encode())
    assert portal.metric(DECISIONS, homeserver="hs2", route="resolved") == 1


@pytest.mark.parametrize(
    ("method", "uri", "homeserver", "route"),
    [
        (b"GET", b"/_matrix/client/v3/publicRooms", "hs1", "default"),
        (b"PUT", b"/_matrix/client/v3/directory/room/%23a:one.example", "hs1", "default"),
        (b"GET", b"/_matrix/media/v3/download/two.example/abc", "hs2", "media"),
        (b"GET", b"/_matrix/client/v3/profile/@amy:two.example", "hs2", "user-id"),
        (b"GET", b"/_matrix/client/v3/register/available?username=zed", "hs2", "register"),
    ],
)
def test_a_decision_without_a_token_is_not_cached(
    method: bytes, uri: bytes, homeserver: str, route: str
) -> None:
    portal = decider()
    channel = ask(portal, uri, method=method)
    upstream = {"hs1": HS1_URL, "hs2": HS2_URL}[homeserver]
    assert decision(channel) == (200, upstream, b"0")
    assert portal.metric(DECISIONS, homeserver=homeserver, route=route) == 1
    assert [hs.requests for hs in portal.homeservers] == [[], []]  # nothing was relayed


def test_a_request_the_portal_must_answer_itself_is_sent_back_to_the_portal() -> None:
    portal = decider()
    for hs in portal.homeservers:
        hs.on(b"GET", WHOAMI, json_answer(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "no"}))
    channel = ask(portal, SYNC, token="tok_nobody")
    assert decision(channel) == (200, PORTAL_URL, b"0")
    assert portal.metric(DECISIONS, homeserver="-", route="portal") == 1
    assert [hs.paths() for hs in portal.homeservers] == [[WHOAMI], [WHOAMI]]
    # nginx then sends the request to the portal, which answers it (without asking again).
    answered = portal.request(b"GET", SYNC, access_token="tok_nobody")
    assert answered.code == 401
    assert answered.json()["errcode"] == "M_UNKNOWN_TOKEN"
    assert [hs.paths() for hs in portal.homeservers] == [[WHOAMI], [WHOAMI]]


def test_the_client_is_read_from_x_forwarded_for_past_the_trusted_proxies() -> None:
    """The endpoint took X-Forwarded-For's first address: through a proxy that appends
    (``$proxy_add_x_forwarded_for``), a client chose the address it was limited under."""
    portal = decider(gateway={"resolve_burst": 1, "resolve_per_second": 0.001})
    for hs in portal.homeservers:
        hs.on(b"GET", WHOAMI, json_answer(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "no"}))
    real = b"203.0.113.9"
    first = ask(portal, SYNC, token="t-1", extra=((b"X-Forwarded-For", b"6.6.6.1, " + real),))
    assert decision(first)[1] == PORTAL_URL  # unknown: the portal answers it (401)
    asked = sum(len(hs.requests) for hs in portal.homeservers)
    spoofed = ask(portal, SYNC, token="t-2", extra=((b"X-Forwarded-For", b"6.6.6.2, " + real),))
    assert decision(spoofed)[1] == PORTAL_URL  # limited: this client's burst is spent
    assert sum(len(hs.requests) for hs in portal.homeservers) == asked
    other = ask(portal, SYNC, token="t-3", extra=((b"X-Forwarded-For", b"198.51.100.4"),))
    assert decision(other)[1] == PORTAL_URL
    assert sum(len(hs.requests) for hs in portal.homeservers) > asked  # its own burst
