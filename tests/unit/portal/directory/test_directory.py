"""The directory's lookups with sources played by the test: the cache, one lookup per
identifier, the limits, and what each answer means."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer, task

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.directory import DirectorySettings, Source
from synapse_base_cs_url.portal.directory.directory import Directory, DirectoryCache, Location
from synapse_base_cs_url.portal.directory.identifier import EMAIL, LOCALPART, Identifier
from synapse_base_cs_url.portal.directory.sources import SourceAnswer
from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.shared import StateUnavailable
from tests.harness.deferreds import settle
from tests.harness.shared_state import SharedDict

BOB = Identifier(LOCALPART, "bob")
CAROL = Identifier(EMAIL, "carol@example.com")


class Played:
    """A source whose answers the test gives, one pending Deferred per ask."""

    name = "played"
    bounds_itself = False

    def __init__(self) -> None:
        self.asks: list[tuple[Identifier, defer.Deferred[SourceAnswer]]] = []
        self.left_out: list[str | None] = []

    async def ask(self, identifier: Identifier, leave_out: str | None = None) -> SourceAnswer:
        d: defer.Deferred[SourceAnswer] = defer.Deferred()
        self.asks.append((identifier, d))
        self.left_out.append(leave_out)
        return await d

    def answer(self, *holders: str, unanswered: tuple[str, ...] = ()) -> None:
        pending = [d for _, d in self.asks if not d.called]
        pending[0].callback(SourceAnswer(frozenset(holders), unanswered))


def setup(
    shared: Any = None, askers: int = 1, **settings: Any
) -> tuple[Directory, Played, task.Clock, list[Any]]:
    clock = task.Clock()
    config = DirectorySettings(sources=(Source.HOMESERVERS,), **settings)
    memory: ExpiringMap[str, str] = ExpiringMap(clock, max_entries=100, ttl=1, sliding=False)
    source = Played()
    seen: list[Any] = []
    directory = Directory(
        config,
        [source],
        DirectoryCache(config, memory, shared, frozenset({"hs1", "hs2", "hs3"})),
        clock,
        on_lookup=lambda *a: seen.append(a),
        on_cache=lambda hit: seen.append(("cache", hit)),
        askers=askers,
    )
    return directory, source, clock, seen


def locate(directory: Directory, identifier: Identifier = BOB, ip: str = "192.0.2.1") -> Any:
    return defer.ensureDeferred(directory.locate(identifier, ip))


def test_found_is_remembered_long_and_nobody_briefly() -> None:
    directory, source, clock, _ = setup(found_ttl=1000, not_found_ttl=10)
    first = locate(directory)
    source.answer("hs2")
    assert settle(first) == Location(frozenset({"hs2"}), True, "played")
    clock.advance(999)
    assert settle(locate(directory)) == Location(frozenset({"hs2"}), True, "cache")
    nobody = locate(directory, CAROL)
    source.answer()
    assert settle(nobody) == Location(frozenset(), True, "played")
    clock.advance(9)
    assert settle(locate(directory, CAROL)).source == "cache"
    clock.advance(2)
    again = locate(directory, CAROL)
    assert len(source.asks) == 3  # asked again: a new account may have appeared
    source.answer("hs1")
    assert settle(again).holders == frozenset({"hs1"})


def test_an_answer_with_a_silent_source_is_not_remembered() -> None:
    directory, source, _, _ = setup()
    first = locate(directory)
    source.answer(unanswered=("hs3",))
    assert settle(first) == Location(frozenset(), False, "played")
    # Found on hs1 while hs3 was silent: it counts, but hs3 may hold the name too.
    second = locate(directory)
    source.answer("hs1", unanswered=("hs3",))
    assert settle(second) == Location(frozenset({"hs1"}), False, "played")
    locate(directory)
    assert len(source.asks) == 3


def test_a_cached_answer_naming_a_homeserver_no_longer_configured_is_asked_again() -> None:
    shared = SharedDict()
    directory, source, _, _ = setup(shared)
    shared.values["dir:" + BOB.key] = ("hs1,gone", 3600)
    d = locate(directory)
    assert len(source.asks) == 1
    source.answer("hs2")
    assert settle(d).holders == frozenset({"hs2"})


def test_one_lookup_per_identifier_shared_by_its_waiters() -> None:
    directory, source, _, _ = setup()
    waiting = [locate(directory, ip=f"192.0.2.{i}") for i in range(50)]
    assert len(source.asks) == 1
    leaving = waiting.pop()
    leaving.cancel()  # one client left: the lookup goes on for the others
    leaving.addErrback(lambda f: f.trap(defer.CancelledError))
    source.answer("hs1")
    assert {settle(d).holders for d in waiting} == {frozenset({"hs1"})}
    assert len(waiting) == 49


def test_a_homeserver_asking_before_creating_is_left_out_and_not_remembered() -> None:
    """The answer says nothing of the asking homeserver: a login asks everyone afterwards,
    and does not wait for (or share) the ask's lookup either."""
    directory, source, _, _ = setup()
    creating = defer.ensureDeferred(directory.locate(BOB, "homeserver", creating_on="hs1"))
    login = locate(directory)
    assert source.left_out == ["hs1", None]
    source.answer()
    source.answer("hs1")
    assert settle(creating) == Location(frozenset(), True, "played")
    assert settle(login).holders == frozenset({"hs1"})
    assert settle(locate(directory)).source == "cache"  # the login's answer, remembered
    again = defer.ensureDeferred(directory.locate(CAROL, "homeserver", creating_on="hs2"))
    source.answer()
    settle(again)
    locate(directory, CAROL)
    assert len(source.asks) == 4  # the ask's "nobody" was not remembered


def test_limits_per_client_and_in_total() -> None:
    directory, source, clock, seen = setup(burst=2, per_second=1.0, concurrency=1, max_waiting=1)
    a, b = (
        locate(directory, Identifier(LOCALPART, "a")),
        locate(directory, Identifier(LOCALPART, "b")),
    )
    with pytest.raises(errors.MatrixError) as raised:
        settle(locate(directory, Identifier(LOCALPART, "c")))
    assert (raised.value.status, raised.value.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert raised.value.retry_after == pytest.approx(1.0)
    # Another client: its own burst, but the portal's slots (1 running, 1 waiting) are full.
    with pytest.raises(errors.MatrixError) as full:
        settle(locate(directory, Identifier(LOCALPART, "d"), ip="192.0.2.99"))
    assert full.value.status == 429
    assert len(source.asks) == 1  # b waits for a's slot
    source.answer("hs1")
    assert len(source.asks) == 2
    source.answer("hs2")
    assert settle(a).holders == frozenset({"hs1"}) and settle(b).holders == frozenset({"hs2"})
    assert [s for s in seen if s[:2] == ("-", "limited")] == [("-", "limited", 0.0)] * 2
    clock.advance(1)
    locate(directory, Identifier(LOCALPART, "c"))
    assert len(source.asks) == 3


def test_each_asking_homeserver_has_slots_of_its_own() -> None:
    """A flood of asks through hs1 (its requestToken needs no login) is refused past hs1's
    own slots; a login's lookup and hs2's ask still run."""
    directory, source, _, _ = setup(concurrency=2, max_waiting=1, askers=2)

    def creating(name: str, on: str) -> Any:
        return defer.ensureDeferred(
            directory.locate(Identifier(LOCALPART, name), "homeserver", creating_on=on)
        )

    first, waiting = creating("f1", "hs1"), creating("f2", "hs1")
    with pytest.raises(errors.MatrixError) as full:
        settle(creating("f3", "hs1"))
    assert full.value.status == 429
    login, other = locate(directory, Identifier(LOCALPART, "l")), creating("o", "hs2")
    assert [i.address for i, _ in source.asks] == ["f1", "l", "o"]
    for _ in range(4):
        source.answer()
    assert [settle(d).complete for d in (first, waiting, login, other)] == [True] * 4
    # The homeservers' asks share as many slots as clients' lookups: one each here.
    several = [creating(f"s{i}", "hs2") for i in range(2)]
    assert len(source.asks) == 5
    for _ in range(2):
        source.answer()
    assert [settle(d).complete for d in several] == [True, True]


def test_a_source_that_does_not_answer_in_time() -> None:
    directory, _, clock, seen = setup(timeout=5)
    d = locate(directory)
    clock.advance(5)
    assert settle(d) == Location(frozenset(), False, "played")
    assert ("played", "unanswered", 5.0) in seen


def test_replicas_share_answers_through_the_shared_state() -> None:
    shared = SharedDict()
    first, source_a, _, _ = setup(shared, found_ttl=3600, not_found_ttl=10)
    second, source_b, _, seen_b = setup(shared)
    d = locate(first)
    source_a.answer("hs1", "hs2")
    assert settle(d).holders == frozenset({"hs1", "hs2"})
    assert settle(locate(second)).holders == frozenset({"hs1", "hs2"})
    assert source_b.asks == [] and ("cache", True) in seen_b
    ((value, ttl),) = shared.values.values()
    assert (value, ttl) == ("hs1,hs2", 3600)
    assert "bob" not in next(iter(shared.values))  # keyed by a hash


def test_an_account_the_portal_placed_is_found_at_once() -> None:
    directory, source, _, _ = setup()
    settle(defer.ensureDeferred(directory.remember(BOB, "hs3")))
    assert settle(locate(directory)) == Location(frozenset({"hs3"}), True, "cache")
    assert source.asks == []


def test_an_answer_at_hand_is_peeked_without_waiting() -> None:
    directory, source, _, seen = setup()
    assert directory.peek(BOB) is None
    d = locate(directory)
    source.answer("hs2")
    settle(d)
    assert directory.peek(BOB) == Location(frozenset({"hs2"}), True, "cache")
    assert ("cache", True) in seen
    # "Nobody" is not at hand: such a login still asks (the placements, then the routes).
    nobody = locate(directory, CAROL)
    source.answer()
    settle(nobody)
    assert directory.peek(CAROL) is None
    # With the shared state, nothing is at hand.
    shared_directory, _, _, _ = setup(SharedDict())
    assert shared_directory.peek(BOB) is None


class Unreadable(SharedDict):
    """Redis down: every command fails."""

    async def get(self, key: str) -> str | None:
        raise StateUnavailable("Redis at 127.0.0.1:6379 did not answer within 2s")

    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        raise StateUnavailable("Redis at 127.0.0.1:6379 did not answer within 2s")


def test_a_cache_that_cannot_be_read_is_not_a_dependency() -> None:
    """Redis down: the sources are asked (within the limits), the answer is given, and
    nothing is cached; before, every lookup login was 503."""
    directory, source, _, seen = setup(Unreadable())
    first = locate(directory)
    source.answer("hs2")
    assert settle(first).holders == {"hs2"}
    again = locate(directory)
    source.answer("hs2")  # asked again: nothing could be cached
    assert settle(again).holders == {"hs2"}
    assert ("cache", True) not in seen
