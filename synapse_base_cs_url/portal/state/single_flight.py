"""One lookup per key in flight at a time, shared by everyone who asks for that key meanwhile
(a token nobody has seen, an account the directory is asked about, a discovery document).

The lookup runs on its own: a waiter that gives up (its client left, so its Deferred is
cancelled) stops waiting, but neither stops the lookup nor the others waiting for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from twisted.internet import defer
from twisted.python.failure import Failure

K = TypeVar("K")
V = TypeVar("V")


class _Flight(Generic[V]):
    def __init__(self) -> None:
        self.waiting: list[defer.Deferred[V]] = []

    def wait(self) -> defer.Deferred[V]:
        def gave_up(d: defer.Deferred[V]) -> None:
            if d in self.waiting:
                self.waiting.remove(d)

        d: defer.Deferred[V] = defer.Deferred(gave_up)
        self.waiting.append(d)
        return d


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._flights: dict[K, _Flight[V]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def in_flight(self, key: K) -> bool:
        return key in self._flights

    def run(self, key: K, fetch: Callable[[], Awaitable[V]]) -> defer.Deferred[V]:
        """The result of ``fetch()`` for ``key``: started now unless a fetch for ``key`` is
        already under way, whose result is then shared. Its failure fails every waiter."""
        flight = self._flights.get(key)
        if flight is not None:
            return flight.wait()
        flight = self._flights[key] = _Flight()
        waiter = flight.wait()

        def done(result: V | Failure) -> None:
            del self._flights[key]
            waiting, flight.waiting = flight.waiting, []
            for d in waiting:
                if isinstance(result, Failure):
                    d.errback(result)
                else:
                    d.callback(result)

        async def call() -> V:
            return await fetch()

        defer.ensureDeferred(call()).addBoth(done)
        return waiter
