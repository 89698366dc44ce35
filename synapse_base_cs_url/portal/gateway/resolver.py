"""Finding the homeserver of an access token the portal has not seen: ask every homeserver
``GET /account/whoami`` with it, at once; the first that answers 200 is the one (or that
refuses it as its own: an expired token is answered ``soft_logout: true`` by the homeserver
that issued it, and the request goes there for that answer).

A token nobody says they know is ``401`` only when every homeserver answered; if one could
not (down, too slow, an error), the answer is ``503`` with ``Retry-After`` and nothing is
remembered: a homeserver outage must never log its users out.

A token is only ever sent to a homeserver other than its own here. Resolutions are limited
so that made-up tokens cannot multiply load onto the homeservers: a Synapse token with a bad
checksum is refused without asking anyone; each client address may start
``gateway.resolve_burst`` resolutions, then ``gateway.resolve_per_second``; at most
``gateway.resolve_concurrency`` run at once (more wait, up to as many again, then 429); a
token every homeserver said it does not know is answered 401 for
``gateway.unknown_token_ttl`` without asking again; concurrent requests with the same
unknown token share one resolution.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from twisted.internet import defer

from synapse_base_cs_url.core.json_dict import json_object
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.client_paths import WHOAMI_PATH
from synapse_base_cs_url.portal.config.gateway import GatewaySettings
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.gateway.access_tokens import synapse_token_malformed
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.keys import record_key, token_tag
from synapse_base_cs_url.portal.state.rate_limit import ClientBuckets, RateLimiter, Slots
from synapse_base_cs_url.portal.state.single_flight import SingleFlight
from synapse_base_cs_url.portal.upstream.client import Upstream, UpstreamResponse

logger = logging.getLogger("synapse_base_cs_url.portal")

#: What a client is told to wait when a homeserver could not say whether a token is its own.
UNANSWERED_RETRY_AFTER = 5.0
#: Client addresses whose rate buckets are kept (the least recently seen go first).
MAX_TRACKED_CLIENTS = 100_000


def unknown_tokens(clock: Clock) -> ExpiringMap[str, bool]:
    """The tokens every homeserver said it does not know (each for ``unknown_token_ttl``)."""
    return ExpiringMap(clock, max_entries=MAX_TRACKED_CLIENTS, ttl=10.0, sliding=False)


class Resolver:
    def __init__(
        self,
        upstream: Upstream,
        homeservers: Sequence[Homeserver],
        settings: GatewaySettings,
        clock: Clock,
        on_result: Callable[[str], None] = lambda result: None,
        *,
        ipv6_prefix_length: int = 64,
        buckets: ClientBuckets | None = None,
        unknown: ExpiringMap[str, bool] | None = None,
    ) -> None:
        """``buckets`` and ``unknown``: the clients' limits and the tokens known to be
        unknown, kept by the process across reloads (new ones if not given)."""
        self._on_result = on_result
        self._upstream = upstream
        self._homeservers = tuple(homeservers)
        self._settings = settings
        self._clock = clock
        self._buckets = RateLimiter(
            settings.resolve_per_second,
            settings.resolve_burst,
            clock,
            max_keys=MAX_TRACKED_CLIENTS,
            ipv6_prefix_length=ipv6_prefix_length,
            buckets=buckets,
        )
        self._slots = Slots(settings.resolve_concurrency)
        self._lookups: SingleFlight[str, str | None] = SingleFlight()
        self._unknown = unknown if unknown is not None else unknown_tokens(clock)
        # A token is unknown to these homeservers: after a reload that changes them, asked
        # again.
        self._scope = record_key("homeservers", repr(self._homeservers))[:16] + ":"

    async def resolve(self, token: str, key: str, client: str) -> str | None:
        """The name of the homeserver that knows ``token`` (``key`` is its hash), or
        ``None``; :class:`MatrixError` 429 when ``client`` or the portal is over its limit.

        One lookup per token runs at a time, on its own: a request that gives up (its
        client left) stops waiting for it, but neither stops it nor the others waiting."""
        if synapse_token_malformed(token):
            self._on_result("malformed")
            return None
        if self._scope + key in self._unknown:
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
        for this token). A token every homeserver said it does not know is remembered as
        unknown; one that a homeserver could not say about is not: that homeserver may be
        its own, down for a moment (``503``, nothing remembered)."""
        found, unanswered = await self._slots.run(lambda: self._ask_all(token))
        if found is None and unanswered:
            logger.info(
                "token %s not resolved: %s did not answer", token_tag(token), ",".join(unanswered)
            )
            self._on_result("unanswered")
            raise errors.token_home_unanswered(unanswered, UNANSWERED_RETRY_AFTER)
        if found is None:
            self._unknown.put(self._scope + key, True, self._settings.unknown_token_ttl)
        logger.info("token %s resolved: %s", token_tag(token), found or "unknown")
        self._on_result("found" if found else "unknown")
        return found

    async def _ask_all(self, token: str) -> tuple[str | None, tuple[str, ...]]:
        """The homeserver that knows ``token`` (``None``: none said so), and those that
        could not say (unreachable, too slow, an error, or not a Matrix answer)."""
        headers = [(b"Authorization", [b"Bearer " + token.encode("ascii", "replace")])]
        asks = [
            (
                hs.name,
                defer.ensureDeferred(self._upstream.request(hs, b"GET", WHOAMI_PATH, headers)),
            )
            for hs in self._homeservers
        ]
        found: defer.Deferred[str | None] = defer.Deferred()
        remaining = len(asks)
        unanswered: list[str] = []
        closing = False

        def answered(result: object, name: str) -> None:
            nonlocal remaining
            remaining -= 1
            if found.called or closing:
                return
            verdict = _verdict(result)
            if verdict is HOLDS:
                found.callback(name)
                return
            if verdict is UNANSWERED:
                unanswered.append(name)
            if remaining == 0:
                found.callback(None)

        for name, d in asks:
            d.addBoth(answered, name)
        try:
            holder = await found
        finally:
            closing = True  # the asks cancelled now are answered by nobody
            for _, d in asks:
                if not d.called:
                    d.cancel()
        return holder, () if holder is not None else tuple(sorted(unanswered))


#: What one homeserver's whoami answer says of a token.
HOLDS, NOT_HERE, UNANSWERED = "holds", "not-here", "unanswered"


def _verdict(result: object) -> str:
    """``200``: the token is this homeserver's. ``401 M_UNKNOWN_TOKEN`` without
    ``soft_logout``: not this homeserver's. Any other ``401`` (``soft_logout: true`` for an
    expired token, ``M_USER_LOCKED``...) is the token's own homeserver refusing it: the
    request goes there, and the client gets that homeserver's own answer. Anything else
    (a failure, a 5xx, a 429, not JSON) says nothing."""
    if not isinstance(result, UpstreamResponse):
        return UNANSWERED  # unreachable, timed out, cancelled: a Failure
    if result.status == 200:
        return HOLDS
    if result.status != 401:
        return UNANSWERED
    answer = json_object(result.body)
    if answer is None:
        return UNANSWERED
    if answer.get("errcode") == errors.UNKNOWN_TOKEN and answer.get("soft_logout") is not True:
        return NOT_HERE
    return HOLDS
