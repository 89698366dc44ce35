"""Resolving unknown tokens (limits, sharing, negative caching) and routing requests, with
the homeservers' whoami answers played by the test."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.internet.testing import MemoryReactorClock, StringTransport

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.config.upstream import Timeouts
from synapse_base_cs_url.portal.gateway.destination import Destinations
from synapse_base_cs_url.portal.gateway.resolver import (
    MAX_TRACKED_CLIENTS,
    Resolver,
    unknown_tokens,
)
from synapse_base_cs_url.portal.gateway.token_map import TokenMap
from synapse_base_cs_url.portal.state.keys import token_key
from synapse_base_cs_url.portal.state.rate_limit import ClientBuckets, RateLimiter
from synapse_base_cs_url.portal.upstream.client import Upstream, UpstreamResponse
from tests.harness.deferreds import settle
from tests.harness.placement import account_steps_for, homes_for, placement_for

CONFIG = PortalConfig.from_config(
    {
        "public_baseurl": "https://portal.example.com",
        "client_api": "proxy",
        "homeservers": {
            "hs1": {"base_url": "https://hs1.example.com", "server_name": "one.example"},
            "hs2": {"base_url": "https://hs2.example.com", "server_name": "two.example"},
        },
        "routes": [{"match": {"user_id": "@.*:two\\.example"}, "homeserver": "hs2"}],
        "default_homeserver": "hs1",
        "gateway": {"resolve_burst": 2, "resolve_per_second": 1, "resolve_concurrency": 1},
    }
)


class Homeservers:
    """Plays the homeservers' whoami: each request waits until the test answers it."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, defer.Deferred[UpstreamResponse]]] = []

    async def request(self, hs: Any, method: bytes, path: bytes, headers: Any) -> Any:
        d: defer.Deferred[UpstreamResponse] = defer.Deferred()
        self.asked.append((hs.name, d))
        return await d

    def answer(self, name: str, status: int, body: bytes | None = None) -> None:
        """Answer ``name``'s oldest open ask; a 401 is Synapse's for a token it does not
        know unless ``body`` says otherwise."""
        if body is None:
            body = UNKNOWN_TOKEN_BODY if status == 401 else b"{}"
        for asked, d in self.asked:
            if asked == name and not d.called:
                d.callback(UpstreamResponse(status, None, body))  # type: ignore[arg-type]
                return
        raise AssertionError(f"{name} was not asked")

    def fail(self, name: str, error: Exception) -> None:
        for asked, d in self.asked:
            if asked == name and not d.called:
                d.errback(error)
                return
        raise AssertionError(f"{name} was not asked")


#: What Synapse answers whoami with a token it does not know.
UNKNOWN_TOKEN_BODY = (
    b'{"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token passed.", "soft_logout": false}'
)


#: What the process keeps across reloads (``wiring.Lasting``), per test.
KEPT: dict[str, Any] = {}


def setup() -> tuple[Destinations, Resolver, Homeservers, task.Clock]:
    clock, homeservers = task.Clock(), Homeservers()
    KEPT.clear()
    KEPT.update(buckets=ClientBuckets(), unknown=unknown_tokens(clock))
    resolver = Resolver(
        homeservers,  # type: ignore[arg-type]
        list(CONFIG.homeservers.values()),
        CONFIG.gateway,
        clock,
        **KEPT,
    )
    placement = placement_for(CONFIG, clock)
    steps = account_steps_for(CONFIG, clock, placement)
    router = Destinations(
        CONFIG,
        TokenMap.build(100, clock),
        resolver,
        placement=placement,
        steps=steps,
        homes=homes_for(CONFIG, clock, placement),
    )
    return router, resolver, homeservers, clock


def route(
    router: Destinations,
    path: bytes,
    token: str | None = None,
    *,
    method: bytes = b"GET",
    query: bytes = b"",
    **kw: Any,
) -> Any:
    auth = f"Bearer {token}".encode() if token else None
    return defer.ensureDeferred(
        router.route(method, path, query, authorization=auth, client_ip="192.0.2.1", **kw)
    )


def test_an_unknown_token_is_resolved_by_the_first_homeserver_that_knows_it() -> None:
    router, _, homeservers, _ = setup()
    d = route(router, b"/_matrix/client/v3/sync", "tok-1")
    assert [name for name, _ in homeservers.asked] == ["hs1", "hs2"]
    homeservers.answer("hs1", 401)
    assert not d.called
    homeservers.answer("hs2", 200)
    target = settle(d)
    assert (target.homeserver.name, target.route, target.key) == (
        "hs2",
        "resolved",
        token_key("tok-1"),
    )
    # Remembered: nobody is asked again.
    again = settle(route(router, b"/_matrix/client/v3/sync", "tok-1"))
    assert (again.homeserver.name, again.route) == ("hs2", "token")
    assert len(homeservers.asked) == 2


def test_a_token_nobody_knows_is_401_and_not_asked_about_again_for_a_while() -> None:
    router, _, homeservers, clock = setup()
    d = route(router, b"/_matrix/client/v3/sync", "nobody")
    homeservers.answer("hs1", 401)
    homeservers.answer("hs2", 401)
    with pytest.raises(errors.MatrixError) as raised:
        settle(d)
    assert (raised.value.status, raised.value.errcode) == (401, "M_UNKNOWN_TOKEN")
    with pytest.raises(errors.MatrixError):
        settle(route(router, b"/_matrix/client/v3/sync", "nobody"))
    assert len(homeservers.asked) == 2
    clock.advance(11)  # gateway.unknown_token_ttl
    route(router, b"/_matrix/client/v3/sync", "nobody")
    assert len(homeservers.asked) == 4


def test_concurrent_requests_with_one_token_share_one_resolution() -> None:
    router, _, homeservers, _ = setup()
    first = route(router, b"/a", "shared")
    second = route(router, b"/b", "shared")
    assert len(homeservers.asked) == 2
    homeservers.answer("hs1", 200)
    assert settle(first).homeserver.name == settle(second).homeserver.name == "hs1"


def test_limits_per_client_and_in_total() -> None:
    router, _, homeservers, clock = setup()
    pending = route(router, b"/a", "t1")  # running (concurrency 1)
    waiting = route(router, b"/a", "t2")  # waits its turn
    with pytest.raises(errors.MatrixError) as raised:  # the client's burst of 2 is used
        settle(route(router, b"/a", "t3"))
    assert (raised.value.status, raised.value.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert raised.value.retry_after is not None and raised.value.retry_after > 0
    homeservers.answer("hs1", 200)
    assert settle(pending).homeserver.name == "hs1"
    homeservers.answer("hs2", 200)  # t2's turn came: hs1 and hs2 asked again
    assert settle(waiting).homeserver.name in ("hs1", "hs2")
    clock.advance(1)
    assert RateLimiter(1, 1, clock, max_keys=MAX_TRACKED_CLIENTS).take("x") == 0


@pytest.mark.parametrize(
    ("path", "hs_name", "reason"),
    [
        (b"/_matrix/media/v3/download/two.example/abc", "hs2", "media"),
        (b"/_matrix/media/r0/thumbnail/one.example/abc", "hs1", "media"),
        (b"/_matrix/media/v3/download/elsewhere.example/abc", "hs1", "default"),
        (b"/_matrix/client/v3/profile/%40bob%3Atwo.example/displayname", "hs2", "user-id"),
        (b"/_matrix/client/v3/profile/@carol:one.example", "hs1", "user-id"),
        (b"/_matrix/client/v3/publicRooms", "hs1", "default"),
    ],
)
def test_requests_without_a_token(path: bytes, hs_name: str, reason: str) -> None:
    router, _, homeservers, _ = setup()
    target = settle(route(router, path))
    assert (target.homeserver.name, target.route) == (hs_name, reason)
    assert homeservers.asked == []


def test_registration_by_username_then_by_session() -> None:
    router, _, _, _ = setup()

    def register(body: bytes) -> Any:
        return settle(
            defer.ensureDeferred(
                router.route(
                    b"POST",
                    b"/_matrix/client/v3/register",
                    b"",
                    authorization=None,
                    client_ip="192.0.2.1",
                    body=body,
                )
            )
        )

    assert register(b'{"username": "@x:two.example"}').homeserver.name == "hs2"
    assert register(b'{"username": "newbie"}').homeserver.name == "hs1"
    settle(defer.ensureDeferred(router.follow_registration("S1", "hs2", None, "192.0.2.1")))
    by_session = register(b'{"auth": {"session": "S1", "type": "m.login.dummy"}}')
    assert (by_session.homeserver.name, by_session.route) == ("hs2", "registration-session")
    # A step naming nothing follows this client's latest placement (as without the gateway).
    nothing = register(b"not json")
    assert (nothing.homeserver.name, nothing.route) == ("hs1", "register")


def test_a_request_giving_up_leaves_the_lookup_to_the_others() -> None:
    router, _, homeservers, _ = setup()
    first = route(router, b"/a", "shared-token")
    second = route(router, b"/b", "shared-token")
    first.cancel()  # its client left
    first.addErrback(lambda f: None)
    homeservers.answer("hs1", 200)
    assert settle(second).homeserver.name == "hs1"


def test_two_queued_lookups_of_one_token_take_one_slot_and_give_it_back() -> None:
    router, resolver, homeservers, clock = setup()
    busy = route(router, b"/a", "t-busy")  # takes the only slot
    queued = [route(router, b"/a", "t-queued"), route(router, b"/b", "t-queued")]
    homeservers.answer("hs1", 200)
    settle(busy)
    homeservers.answer("hs2", 200)  # the queued lookup ran once, for both requests
    assert {settle(d).homeserver.name for d in queued} == {"hs2"}
    assert resolver._slots.running == 0
    clock.advance(10)  # the client's bucket refills
    later = route(router, b"/c", "t-later")
    assert len(homeservers.asked) == 6  # it got a slot at once: none was lost
    homeservers.answer("hs1", 200)
    assert settle(later).homeserver.name == "hs1"


@pytest.mark.parametrize(
    ("query", "hs_name", "reason"),
    [
        (b"username=%40x%3Atwo.example", "hs2", "register"),
        (b"username=newbie", "hs1", "register"),
        (b"", "hs1", "default"),
        (b"username=", "hs1", "default"),  # named nothing
    ],
)
def test_username_availability_is_asked_where_it_would_register(
    query: bytes, hs_name: str, reason: str
) -> None:
    router, _, _, _ = setup()
    target = settle(route(router, b"/_matrix/client/v3/register/available", query=query))
    assert (target.homeserver.name, target.route) == (hs_name, reason)


def test_a_refresh_goes_where_its_token_was_learnt() -> None:
    router, _, homeservers, _ = setup()
    answer = {"access_token": "a1", "refresh_token": "opaque-r1"}
    settle(defer.ensureDeferred(router.learn_answer(answer, "hs2")))

    def refresh(token: str) -> Any:
        body = b'{"refresh_token": "%s"}' % token.encode()
        path = b"/_matrix/client/v3/refresh"
        return settle(route(router, path, method=b"POST", body=body))

    learnt = refresh("opaque-r1")
    assert (learnt.homeserver.name, learnt.route) == ("hs2", "refresh-token")
    assert refresh("opaque-unknown").route == "default"
    assert settle(route(router, b"/_matrix/client/v3/account/whoami", "a1")).route == "token"
    assert homeservers.asked == []


def test_a_reload_hands_no_client_a_fresh_burst() -> None:
    router, _, homeservers, clock = setup()
    for token in ("gone-1", "gone-2"):  # the client's burst of 2, each found unknown
        pending = route(router, b"/_matrix/client/v3/sync", token)
        homeservers.answer("hs1", 401)
        homeservers.answer("hs2", 401)
        with pytest.raises(errors.MatrixError):
            settle(pending)
    reloaded = Resolver(
        homeservers,  # type: ignore[arg-type]
        list(CONFIG.homeservers.values()),
        CONFIG.gateway,
        clock,
        **KEPT,
    )
    with pytest.raises(errors.MatrixError) as raised:
        settle(reloaded.resolve("gone-3", token_key("gone-3"), "192.0.2.1"))
    assert raised.value.status == 429
    # A token found unknown before the reload is still known to be unknown: nobody asked.
    asked = len(homeservers.asked)
    assert settle(reloaded.resolve("gone-1", token_key("gone-1"), "192.0.2.9")) is None
    assert len(homeservers.asked) == asked
    # A reload that changes the homeservers asks them again: one may know it.
    fewer = Resolver(
        homeservers,  # type: ignore[arg-type]
        [CONFIG.homeservers["hs1"]],
        CONFIG.gateway,
        clock,
        **KEPT,
    )
    defer.ensureDeferred(fewer.resolve("gone-1", token_key("gone-1"), "192.0.2.10"))
    assert len(homeservers.asked) == asked + 1


@pytest.mark.parametrize("path", [b"/_matrix/client/v3/refresh", b"/_matrix/client/v3/register"])
def test_bodies_nested_past_pythons_limit_are_not_json(path: bytes) -> None:
    router, _, _, _ = setup()
    body = b"[" * 100_000 + b"]" * 100_000
    target = settle(route(router, path, method=b"POST", body=body))
    assert target.route == "default"


def test_the_slower_asks_cancelled_once_one_homeserver_answered_log_nothing_alarming(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The real upstream client on an in-memory reactor: hs1 answers whoami 200 at once, hs2
    is still being connected to when its ask is cancelled; that is no homeserver failing."""
    reactor = MemoryReactorClock()
    upstream = Upstream(reactor, Timeouts(connect=5, total=30))
    quick = Homeserver(name="hs1", base_url="https://hs1.example", proxy_url="http://127.0.0.1:1")
    stuck = Homeserver(name="hs2", base_url="https://hs2.example", proxy_url="http://127.0.0.1:2")
    resolver = Resolver(upstream, [quick, stuck], CONFIG.gateway, reactor)
    with caplog.at_level(logging.DEBUG, logger="synapse_base_cs_url"):
        d = defer.ensureDeferred(resolver.resolve("opaque-1", token_key("opaque-1"), "192.0.2.1"))
        reactor.advance(0)
        ports = [port for _, port, _, _, _ in reactor.tcpClients]
        assert sorted(ports) == [1, 2]  # both asked, both still connecting
        factory = reactor.tcpClients[ports.index(1)][2]
        protocol: Any = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport(lenient=True))
        protocol.dataReceived(
            b'HTTP/1.1 200 OK\r\nContent-Length: 23\r\n\r\n{"user_id": "@a:hs1.x"}'
        )
        reactor.advance(1)
        assert settle(d) == "hs1"
    stuck_connector = reactor.connectors[ports.index(2)]
    assert stuck_connector.stoppedConnecting  # the slower ask was given up
    alarming = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert alarming == []


def test_a_homeserver_that_cannot_answer_never_makes_a_token_unknown() -> None:
    """The review's outage: hs2 unreachable, its user's valid token was answered ``401
    M_UNKNOWN_TOKEN`` (``soft_logout: false``: clients drop the session and its keys), and
    kept being so after hs2 came back, until ``unknown_token_ttl`` passed."""
    router, _, homeservers, _ = setup()
    d = route(router, b"/_matrix/client/v3/sync", "bobs-token")
    homeservers.answer("hs1", 401)
    homeservers.fail("hs2", errors.unreachable("hs2", "connection refused"))
    with pytest.raises(errors.MatrixError) as raised:
        settle(d)
    assert raised.value.status == 503
    assert raised.value.retry_after is not None and raised.value.retry_after > 0
    assert "soft_logout" not in raised.value.body().decode()
    # Nothing remembered: hs2, back, is asked at once, and the token is its.
    again = route(router, b"/_matrix/client/v3/sync", "bobs-token")
    assert [name for name, _ in homeservers.asked] == ["hs1", "hs2", "hs1", "hs2"]
    homeservers.answer("hs1", 401)
    homeservers.answer("hs2", 200)
    assert settle(again).homeserver.name == "hs2"


@pytest.mark.parametrize("status", [500, 502, 429, 404])
def test_an_error_answer_says_nothing_about_a_token(status: int) -> None:
    router, _, homeservers, _ = setup()
    d = route(router, b"/_matrix/client/v3/sync", f"tok-{status}")
    homeservers.answer("hs1", 401)
    homeservers.answer("hs2", status)
    with pytest.raises(errors.MatrixError) as raised:
        settle(d)
    assert raised.value.status == 503


def test_a_401_that_is_not_a_plain_unknown_token_is_the_tokens_own_homeserver() -> None:
    """An expired refreshable token is answered ``soft_logout: true`` by its homeserver: the
    request goes there, so the client gets that answer (and refreshes, keeping its keys)."""
    router, _, homeservers, _ = setup()
    d = route(router, b"/_matrix/client/v3/sync", "expired")
    homeservers.answer("hs1", 401)
    homeservers.answer(
        "hs2",
        401,
        b'{"errcode": "M_UNKNOWN_TOKEN", "error": "Access token has expired", "soft_logout": true}',
    )
    assert settle(d).homeserver.name == "hs2"
    locked = route(router, b"/_matrix/client/v3/sync", "locked")
    homeservers.answer("hs1", 401, b'{"errcode": "M_USER_LOCKED", "soft_logout": true}')
    assert settle(locked).homeserver.name == "hs1"
