"""Finding the homeserver of an access token the portal has not seen: ask every homeserver
``GET /account/whoami`` with it, at once; the first that answers 200 is the one.

A token is only ever sent to a homeserver other than its own here. Resolutions are limited
so that made-up tokens cannot multiply load onto the homeservers: a Synapse token with a bad
checksum is refused without asking anyone; each client address may start
``gateway.resolve_burst`` resolutions, then ``gateway.resolve_per_second``; at most
``gateway.resolve_concurrency`` run at once (more wait, up to as many again, then 429); a
token nobody knows is answered 401 for ``gateway.unknown_token_ttl`` without asking again;
concurrent requests with the same unknown token share one resolution.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence

from twisted.internet import defer

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.gateway import GatewaySettings
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.gateway.access_tokens import synapse_token_malformed, token_tag
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.upstream.client import Upstream

logger = logging.getLogger("synapse_base_cs_url.portal")

WHOAMI = b"/_matrix/client/v3/account/whoami"
#: Client addresses whose rate buckets are kept (the least recently seen go first).
MAX_TRACKED_CLIENTS = 100_000


class TokenBuckets:
    """A token bucket per client address: ``burst`` at once, refilled at ``rate`` a second."""

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self._rate, self._burst, self._clock = rate, burst, clock
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def adopt(self, previous: TokenBuckets) -> None:
        """Carry on from ``previous`` (a reload): each client keeps what it had left."""
        self._buckets = previous._buckets

    def take(self, client: str) -> float:
        """0 if ``client`` may go now (and it is counted), else seconds until it may."""
        now = self._clock.seconds()
        tokens, last = self._buckets.get(client, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - last) * self._rate)
        self._buckets[client] = (tokens, now)
        self._buckets.move_to_end(client)
        while len(self._buckets) > MAX_TRACKED_CLIENTS:
            self._buckets.popitem(last=False)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            return 0.0
        return (1 - tokens) / self._rate


class Lookup:
    """A token's lookup in progress, and the requests waiting for its answer."""

    def __init__(self) -> None:
        self._waiting: list[defer.Deferred[str | None]] = []

    def wait(self) -> defer.Deferred[str | None]:
        def gave_up(d: defer.Deferred[str | None]) -> None:
            if d in self._waiting:
                self._waiting.remove(d)

        d: defer.Deferred[str | None] = defer.Deferred(gave_up)
        self._waiting.append(d)
        return d

    def finish(self, found: str | None) -> None:
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(found)

    def fail(self, error: Exception) -> None:
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(error)


class Resolver:
    def __init__(
        self,
        upstream: Upstream,
        homeservers: Sequence[Homeserver],
        settings: GatewaySettings,
        clock: Clock,
        on_result: Callable[[str], None] = lambda result: None,
    ) -> None:
        self._on_result = on_result
        self._upstream = upstream
        self._homeservers = tuple(homeservers)
        self._settings = settings
        self._clock = clock
        self._buckets = TokenBuckets(settings.resolve_per_second, settings.resolve_burst, clock)
        self._running = 0
        self._queue: collections.deque[defer.Deferred[None]] = collections.deque()
        self._lookups: dict[str, Lookup] = {}
        self._unknown: collections.OrderedDict[str, float] = collections.OrderedDict()

    def keep_limits_of(self, previous: Resolver) -> None:
        """After a reload: the clients' rate buckets stay as they were (a reload must not
        hand every client a fresh burst), and so do the tokens known to be unknown, if the
        homeservers that were asked are the same."""
        self._buckets.adopt(previous._buckets)
        if previous._homeservers == self._homeservers:
            self._unknown = previous._unknown

    async def resolve(self, token: str, key: str, client: str) -> str | None:
        """The name of the homeserver that knows ``token`` (``key`` is its hash), or
        ``None``; :class:`MatrixError` 429 when ``client`` or the portal is over its limit.

        One lookup per token runs at a time, on its own: a request that gives up (its
        client left) stops waiting for it, but neither stops it nor the others waiting."""
        if synapse_token_malformed(token):
            self._on_result("malformed")
            return None
        if self._known_unknown(key):
            self._on_result("unknown")
            return None
        lookup = self._lookups.get(key)
        if lookup is None:
            wait = self._buckets.take(client)
            if wait > 0:
                self._on_result("limited")
                raise errors.limit_exceeded(wait)
            if (
                self._running >= self._settings.resolve_concurrency
                and len(self._queue) >= self._settings.resolve_concurrency
            ):
                self._on_result("limited")
                raise errors.limit_exceeded(1.0)
            lookup = self._lookups[key] = Lookup()
            defer.ensureDeferred(self._run(lookup, token, key))
        return await lookup.wait()

    async def _run(self, lookup: Lookup, token: str, key: str) -> None:
        """One lookup: take a slot (waiting for one if all are taken), ask, answer everyone
        waiting for it, give the slot to the next lookup in line."""
        try:
            if self._running >= self._settings.resolve_concurrency:
                turn: defer.Deferred[None] = defer.Deferred()
                self._queue.append(turn)
                await turn
            self._running += 1
            try:
                found = await self._ask_all(token)
            finally:
                self._running -= 1
                self._next_in_line()
        except Exception as e:
            self._lookups.pop(key, None)
            lookup.fail(e)
            return
        self._lookups.pop(key, None)
        if found is None:
            self._remember_unknown(key)
        logger.info("token %s resolved: %s", token_tag(token), found or "unknown")
        self._on_result("found" if found else "unknown")
        lookup.finish(found)

    def _next_in_line(self) -> None:
        while self._queue:
            turn = self._queue.popleft()
            if not turn.called:
                turn.callback(None)
                return

    async def _ask_all(self, token: str) -> str | None:
        headers = [(b"Authorization", [b"Bearer " + token.encode("ascii", "replace")])]
        asks = [
            (hs.name, defer.ensureDeferred(self._upstream.request(hs, b"GET", WHOAMI, headers)))
            for hs in self._homeservers
        ]
        found: defer.Deferred[str | None] = defer.Deferred()
        remaining = len(asks)
        closing = False

        def answered(result: object, name: str) -> None:
            # A failure (unreachable, timed out, cancelled) is a "no" like any other answer.
            nonlocal remaining
            remaining -= 1
            if found.called or closing:
                return
            if getattr(result, "status", None) == 200:
                found.callback(name)
            elif remaining == 0:
                found.callback(None)

        for name, d in asks:
            d.addBoth(answered, name)
        try:
            return await found
        finally:
            closing = True  # the asks cancelled now are answered by nobody
            for _, d in asks:
                if not d.called:
                    d.cancel()

    def _known_unknown(self, key: str) -> bool:
        expiry = self._unknown.get(key)
        if expiry is None:
            return False
        if expiry <= self._clock.seconds():
            del self._unknown[key]
            return False
        return True

    def _remember_unknown(self, key: str) -> None:
        self._unknown[key] = self._clock.seconds() + self._settings.unknown_token_ttl
        while len(self._unknown) > MAX_TRACKED_CLIENTS:
            self._unknown.popitem(last=False)
