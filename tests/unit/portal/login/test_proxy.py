"""Proxy mode's header rules and login body amendment; discovery's combining and cache."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.web.http_headers import Headers

from synapse_base_cs_url.portal.config.sso import SsoSettings
from synapse_base_cs_url.portal.discovery import (
    TtlCache,
    combine_login_flows,
    combine_versions,
    well_known_client,
)
from synapse_base_cs_url.portal.login.proxy import amend_login_body
from synapse_base_cs_url.portal.upstream.headers import forward_headers, relay_headers


def test_forward_headers_strip_hop_by_hop_and_client_forwarding() -> None:
    incoming = Headers(
        {
            b"Host": [b"portal.example.com"],
            b"Content-Type": [b"application/json"],
            b"Content-Length": [b"12"],
            b"Connection": [b"keep-alive, X-Secret-Hop"],
            b"X-Secret-Hop": [b"1"],
            b"Keep-Alive": [b"timeout=5"],
            b"Transfer-Encoding": [b"chunked"],
            b"TE": [b"trailers"],
            b"Upgrade": [b"h2c"],
            b"Proxy-Authorization": [b"Basic x"],
            b"X-Forwarded-For": [b"203.0.113.7"],
            b"X-Forwarded-Proto": [b"https"],
            b"X-Forwarded-Host": [b"evil.example"],
            b"Forwarded": [b"for=203.0.113.7"],
            b"Accept-Encoding": [b"gzip"],
            b"User-Agent": [b"Element/1.0"],
            b"Authorization": [b"Bearer abc"],
        }
    )
    out = {
        name.lower(): values
        for name, values in forward_headers(incoming, client_ip="198.51.100.2", scheme="https")
    }
    assert out == {
        b"content-type": [b"application/json"],
        b"user-agent": [b"Element/1.0"],
        b"authorization": [b"Bearer abc"],
        b"x-forwarded-for": [b"198.51.100.2"],
        b"x-forwarded-proto": [b"https"],
        b"x-real-ip": [b"198.51.100.2"],
    }


def test_relay_headers_drop_hop_by_hop_length_and_cors() -> None:
    upstream = Headers(
        {
            b"Content-Type": [b"application/json"],
            b"Content-Length": [b"100"],
            b"Connection": [b"close"],
            b"Transfer-Encoding": [b"chunked"],
            b"Access-Control-Allow-Origin": [b"https://only.example"],
            b"Date": [b"yesterday"],
            b"Server": [b"Synapse/1.0"],
            b"Cache-Control": [b"no-store"],
        }
    )
    out = {name.lower(): values for name, values in relay_headers(upstream)}
    assert out == {b"content-type": [b"application/json"], b"cache-control": [b"no-store"]}


LOGIN = {"user_id": "@a:hs.example", "access_token": "t", "device_id": "D"}


def amend(body: Any, status: int = 200) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    out = amend_login_body(status, raw, "https://hs.example.com")
    return out if out == raw else json.loads(out)


def test_amend_adds_both_when_missing() -> None:
    assert amend(LOGIN) == {
        **LOGIN,
        "base_cs_url": "https://hs.example.com",
        "well_known": {"m.homeserver": {"base_url": "https://hs.example.com"}},
    }


def test_amend_keeps_what_the_homeserver_said() -> None:
    both = {
        **LOGIN,
        "base_cs_url": "https://per-user.example",
        "well_known": {"m.homeserver": {"base_url": "https://per-user.example"}},
    }
    raw = json.dumps(both).encode()
    assert amend_login_body(200, raw, "https://hs.example.com") == raw  # byte for byte
    only_well_known = {
        **LOGIN,
        "well_known": {
            "m.homeserver": {"base_url": "https://wk.example"},
            "m.identity_server": {"base_url": "https://id"},
        },
    }
    amended = amend(only_well_known)
    assert amended["base_cs_url"] == "https://wk.example"
    assert amended["well_known"] == only_well_known["well_known"]
    only_base = {**LOGIN, "base_cs_url": "https://b.example"}
    assert amend(only_base)["well_known"] == {"m.homeserver": {"base_url": "https://b.example"}}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"errcode": "M_FORBIDDEN", "error": "Invalid password"}, 403),
        ({"errcode": "M_LIMIT_EXCEEDED"}, 429),
        ([1, 2], 200),
        (b"not json", 200),
        ({"no": "user"}, 200),
    ],
)
def test_amend_passes_everything_else_through(body: Any, status: int) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert amend_login_body(status, raw, "https://hs.example.com") == raw


def test_combine_versions() -> None:
    answers = [
        (
            "hs1",
            {
                "versions": ["r0.6.1", "v1.1", "v1.2"],
                "unstable_features": {"a": True, "b": True, "c": False},
            },
        ),
        (
            "hs2",
            {"versions": ["v1.1", "v1.2", "v1.3"], "unstable_features": {"a": True, "b": False}},
        ),
    ]
    assert combine_versions(answers) == {
        "versions": ["v1.1", "v1.2"],
        "unstable_features": {"a": True, "b": False},
    }
    assert combine_versions(answers[:1])["versions"] == ["r0.6.1", "v1.1", "v1.2"]


def test_combine_login_flows_intersects_but_takes_sso_from_the_sso_homeserver() -> None:
    answers = [
        (
            "hs1",
            {
                "flows": [
                    {"type": "m.login.password"},
                    {"type": "m.login.application_service"},
                    {"type": "m.login.token"},
                ]
            },
        ),
        ("hs2", {"flows": [{"type": "m.login.password"}, {"type": "org.matrix.login.jwt"}]}),
        (
            "idp",
            {
                "flows": [
                    {"type": "m.login.password"},
                    {"type": "m.login.sso", "identity_providers": [{"id": "oidc"}]},
                    {"type": "m.login.token"},
                ]
            },
        ),
    ]
    assert combine_login_flows(answers, sso=SsoSettings(default="idp")) == {
        "flows": [
            {"type": "m.login.password"},
            {"type": "m.login.sso", "identity_providers": [{"id": "oidc"}]},
            {"type": "m.login.token"},
        ]
    }
    assert combine_login_flows(answers, sso=SsoSettings(default="hs2")) == {
        "flows": [{"type": "m.login.password"}]
    }


def test_well_known_client() -> None:
    assert json.loads(well_known_client("https://m.example.com")) == {
        "m.homeserver": {"base_url": "https://m.example.com"}
    }


def test_ttl_cache_shares_one_fetch_and_expires() -> None:
    clock = task.Clock()
    cache = TtlCache(clock, ttl=10)
    calls: list[defer.Deferred[bytes]] = []

    async def fetch() -> bytes:
        d: defer.Deferred[bytes] = defer.Deferred()
        calls.append(d)
        return await d

    first = defer.ensureDeferred(cache.get(b"k", fetch))
    second = defer.ensureDeferred(cache.get(b"k", fetch))
    assert len(calls) == 1
    calls[0].callback(b"v1")
    assert first.result == second.result == b"v1"
    clock.advance(9)
    assert defer.ensureDeferred(cache.get(b"k", fetch)).result == b"v1"
    assert len(calls) == 1
    clock.advance(2)
    third = defer.ensureDeferred(cache.get(b"k", fetch))
    assert len(calls) == 2
    calls[1].callback(b"v2")
    assert third.result == b"v2"


def test_ttl_cache_does_not_keep_failures() -> None:
    clock = task.Clock()
    cache = TtlCache(clock, ttl=10)
    outcomes = [RuntimeError("down"), b"up"]

    async def fetch() -> bytes:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    failed = defer.ensureDeferred(cache.get(b"k", fetch))
    assert isinstance(failed.result.value, RuntimeError)
    failed.addErrback(lambda _: None)
    assert defer.ensureDeferred(cache.get(b"k", fetch)).result == b"up"
