"""One lookup per key at a time, shared by its waiters; a waiter that leaves stops neither
the lookup nor the others."""

from __future__ import annotations

from twisted.internet import defer

from synapse_base_cs_url.portal.state.single_flight import SingleFlight


class Fetches:
    def __init__(self) -> None:
        self.pending: list[defer.Deferred[str]] = []

    async def fetch(self) -> str:
        d: defer.Deferred[str] = defer.Deferred()
        self.pending.append(d)
        return await d


def test_waiters_share_one_fetch() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    fetches = Fetches()
    waiters = [flights.run("k", fetches.fetch) for _ in range(5)]
    other = flights.run("other", fetches.fetch)
    assert len(fetches.pending) == 2
    assert flights.in_flight("k") and len(flights) == 2
    fetches.pending[0].callback("v")
    assert [w.result for w in waiters] == ["v"] * 5
    assert not flights.in_flight("k")
    assert not other.called
    # Done: the next ask fetches again.
    flights.run("k", fetches.fetch)
    assert len(fetches.pending) == 3


def test_a_waiter_that_leaves_stops_neither_the_fetch_nor_the_others() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    fetches = Fetches()
    leaving = flights.run("k", fetches.fetch)
    staying = flights.run("k", fetches.fetch)
    leaving.cancel()
    leaving.addErrback(lambda f: f.trap(defer.CancelledError))
    assert not fetches.pending[0].called  # the fetch goes on
    fetches.pending[0].callback("v")
    assert staying.result == "v"


def test_a_failure_reaches_every_waiter() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    fetches = Fetches()
    waiters = [flights.run("k", fetches.fetch) for _ in range(3)]
    fetches.pending[0].errback(RuntimeError("down"))
    for w in waiters:
        assert isinstance(w.result.value, RuntimeError)
        w.addErrback(lambda f: None)
    assert not flights.in_flight("k")


def test_a_fetch_that_raises_at_once_or_answers_at_once() -> None:
    flights: SingleFlight[str, str] = SingleFlight()

    async def broken() -> str:
        raise ValueError("bad")

    async def ready() -> str:
        return "now"

    failed = flights.run("a", broken)
    assert isinstance(failed.result.value, ValueError)
    failed.addErrback(lambda f: None)
    assert flights.run("b", ready).result == "now"
    assert len(flights) == 0
    assert not flights.in_flight("b")
