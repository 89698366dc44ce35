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

import logging
from collections.abc import Callable, Sequence

from twisted.internet import defer

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.gateway import GatewaySettings
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.gateway.access_tokens import synapse_token_malformed
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.keys import token_tag
from synapse_base_cs_url.portal.state.rate_limit import RateLimiter, Slots
from synapse_base_cs_url.portal.state.single_flight import SingleFlight
from synapse_base_cs_url.portal.upstream.client import Upstream

logger = logging.getLogger("synapse_base_cs_url.portal")

WHOAMI = b"/_matrix/client/v3/account/whoami"
#: Client addresses whose rate buckets are kept (the least recently seen go first).
MAX_TRACKED_CLIENTS = 100_000


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
        self._buckets = RateLimiter(
            settings.resolve_per_second, settings.resolve_burst, clock, max_keys=MAX_TRACKED_CLIENTS
        )
        self._slots = Slots(settings.resolve_concurrency)
        self._lookups: SingleFlight[str, str | None] = SingleFlight()
        self._unknown: ExpiringMap[str, bool] = ExpiringMap(
            clock, max_entries=MAX_TRACKED_CLIENTS, ttl=settings.unknown_token_ttl, sliding=False
        )

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
        if key in self._unknown:
            self._on_result("unknown")
            return None
        if not self._lookups.in_flight(key):
            wait = self._buckets.take(client)
            if wait > 0:
                self._on_result("limited")
                raise errors.limit_exceeded(wait)
            if self._slots.full:
                self._on_result("limited")
                raise errors.limit_exceeded(1.0)
        return await self._lookups.run(key, lambda: self._run(token, key))

    async def _run(self, token: str, key: str) -> str | None:
        """One lookup: ask every homeserver once a slot is free (shared by everyone waiting
        for this token), and remember a token nobody knows."""
        found = await self._slots.run(lambda: self._ask_all(token))
        if found is None:
            self._unknown.put(key, True)
        logger.info("token %s resolved: %s", token_tag(token), found or "unknown")
        self._on_result("found" if found else "unknown")
        return found

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
