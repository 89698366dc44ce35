"""The limits on lookups the portal makes on a client's behalf (the gateway's token
resolutions, the account directory), written once: a token bucket per client address, and a
bounded number of lookups at once."""

from __future__ import annotations

import collections
import ipaddress
from collections.abc import Awaitable, Callable
from typing import TypeVar

from twisted.internet import defer

from synapse_base_cs_url.portal.reactor import Clock

T = TypeVar("T")

ClientBuckets = collections.OrderedDict[str, tuple[float, float]]
"""Client -> (what it has left, when last seen), least recently seen first: kept by the
process (``wiring.Lasting``) and handed to every limiter built for its kind, so that a
reload hands nobody a fresh burst."""


def client_key(client_ip: str, ipv6_prefix_length: int) -> str:
    """What a client is counted as: its IPv4 address, or its IPv6 address's network of
    ``ipv6_prefix_length`` bits (one subscriber holds a whole /64, and would otherwise rotate
    through it to get a fresh limit with every request). Anything else is its own key."""
    if ":" not in client_ip or ipv6_prefix_length >= 128:
        return client_ip
    try:
        address = ipaddress.IPv6Address(client_ip)
    except ValueError:
        return client_ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    network = ipaddress.IPv6Network((address, ipv6_prefix_length), strict=False)
    return str(network)


class RateLimiter:
    """``burst`` at once per client, refilled at ``rate`` a second; at most ``max_keys``
    clients are tracked (the least recently seen go first, starting afresh if they come
    back). A client is counted by :func:`client_key`."""

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Clock,
        *,
        max_keys: int,
        ipv6_prefix_length: int = 64,
        buckets: ClientBuckets | None = None,
    ) -> None:
        """``buckets``: what clients have left, from before a reload (else none yet)."""
        self._rate, self._burst, self._clock, self._max = rate, burst, clock, max_keys
        self._prefix = ipv6_prefix_length
        self._buckets: ClientBuckets = buckets if buckets is not None else ClientBuckets()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """0 if ``key`` (a client's address) may go now (and it is counted), else seconds
        until it may."""
        key = client_key(key, self._prefix)
        now = self._clock.seconds()
        tokens, last = self._buckets.get(key, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - last) * self._rate)
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        return (1 - tokens) / self._rate


class Slots:
    """At most ``limit`` lookups at once; ``max_waiting`` more (as many again, unless given)
    wait their turn, in order, and past that the caller refuses more (:attr:`full`): work
    that the portal does on a client's behalf on other servers never grows without bound."""

    def __init__(self, limit: int, max_waiting: int | None = None) -> None:
        self._limit = limit
        self._max_waiting = limit if max_waiting is None else max_waiting
        self._running = 0
        self._queue: collections.deque[defer.Deferred[None]] = collections.deque()

    @property
    def running(self) -> int:
        """Lookups running now (for tests and metrics)."""
        return self._running

    @property
    def full(self) -> bool:
        """Every slot is taken and as many wait: refuse (429) rather than queue more."""
        return self._running >= self._limit and len(self._queue) >= self._max_waiting

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` once a slot is free; the slot goes to the next in line after it."""
        if self._running >= self._limit:
            turn: defer.Deferred[None] = defer.Deferred()
            self._queue.append(turn)
            await turn
        self._running += 1
        try:
            return await work()
        finally:
            self._running -= 1
            while self._queue:
                turn = self._queue.popleft()
                if not turn.called:
                    turn.callback(None)
                    break
