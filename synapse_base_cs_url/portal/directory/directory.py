"""Where an existing account lives: ask the sources once per identifier, remember the
answer, and say what it means for the login.

- **Cached** in the state backend (memory, or Redis shared by every replica): a found account
  for ``directory.found_ttl`` (accounts do not move), "nobody holds it" for
  ``directory.not_found_ttl``; an answer with a source that could not say is not cached.
- **One lookup per identifier** is in flight at a time, shared by everyone asking for it (a
  homeserver's ask, which leaves that homeserver out, has one of its own); it runs on its
  own, so a client that leaves does not cancel it for the others.
- **Bounded**: each client address may start ``directory.burst`` lookups, then
  ``directory.per_second``; at most ``directory.concurrency`` run at once (``max_waiting``
  more wait; past that ``429``), so the directory is neither an enumeration oracle at speed
  nor a load on the homeservers. Homeservers' asks share as many slots again, split evenly
  among the asking homeservers. Each source has ``directory.timeout`` to answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import attr
from twisted.internet import defer

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.directory import DirectorySettings
from synapse_base_cs_url.portal.directory.identifier import Identifier
from synapse_base_cs_url.portal.directory.sources import Source, SourceAnswer
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.state.expiring import ExpiringMap
from synapse_base_cs_url.portal.state.keys import DIRECTORY_PREFIX
from synapse_base_cs_url.portal.state.rate_limit import ClientBuckets, RateLimiter, Slots
from synapse_base_cs_url.portal.state.shared import SharedState, StateUnavailable
from synapse_base_cs_url.portal.state.single_flight import SingleFlight
from synapse_base_cs_url.portal.state.store import Store

logger = logging.getLogger("synapse_base_cs_url.portal.directory")

#: Client addresses whose rate buckets are kept (the least recently seen go first).
MAX_TRACKED_CLIENTS = 100_000
#: How a cached "nobody holds it" is written (a name is never empty).
NOBODY = ""


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Location:
    """What the directory knows of one identifier."""

    holders: frozenset[str]
    """Homeserver names that hold the account."""
    complete: bool
    """Every source answered (so an empty ``holders`` means nobody holds it)."""
    source: str
    """Which source answered (``cache`` when it was remembered)."""


class DirectoryCache:
    """Answers by identifier: in memory for one process, in the shared state for several."""

    def __init__(
        self,
        settings: DirectorySettings,
        memory: ExpiringMap[str, str],
        shared: SharedState | None,
        known: frozenset[str],
    ) -> None:
        """``memory`` outlives reloads (the process keeps it); ``shared`` is used instead
        when the state is shared; ``known``: the homeservers the config has now."""
        self._settings = settings
        self._store = Store(DIRECTORY_PREFIX, memory, shared)
        self._known = known

    def peek(self, identifier: Identifier) -> frozenset[str] | None:
        """What the memory backend holds, at once (``None`` with the shared state)."""
        return self._holders(self._store.at_hand(identifier.key))

    async def get(self, identifier: Identifier) -> frozenset[str] | None:
        """The cached holders; ``None`` (ask again) when nothing is cached, or when the
        answer names a homeserver the config no longer has (renamed, removed)."""
        return self._holders(await self._store.get(identifier.key))

    def _holders(self, value: str | None) -> frozenset[str] | None:
        if value is None:
            return None
        holders = frozenset(value.split(",")) if value else frozenset()
        if not holders <= self._known:
            return None
        return holders

    async def put(self, identifier: Identifier, holders: frozenset[str]) -> None:
        ttl = self._settings.found_ttl if holders else self._settings.not_found_ttl
        value = ",".join(sorted(holders)) if holders else NOBODY
        await self._store.put(identifier.key, value, ttl)

    def __len__(self) -> int:
        return len(self._store)


class Directory:
    def __init__(
        self,
        settings: DirectorySettings,
        sources: Sequence[Source],
        cache: DirectoryCache,
        clock: Clock,
        *,
        ipv6_prefix_length: int = 64,
        askers: int = 1,
        buckets: ClientBuckets | None = None,
        on_lookup: Callable[[str, str, float], None] = lambda source, outcome, seconds: None,
        on_cache: Callable[[bool], None] = lambda hit: None,
    ) -> None:
        """``on_lookup(source, outcome, seconds)`` and ``on_cache(hit)`` feed the metrics;
        ``buckets``: what each client had left before a reload; ``askers``: how many
        homeservers may ask before they create an account (they share as many slots as
        clients' lookups have)."""
        self._settings = settings
        self._sources = tuple(sources)
        self._cache = cache
        self._clock = clock
        self._on_lookup = on_lookup
        self._on_cache = on_cache
        self._limits = RateLimiter(
            settings.per_second,
            settings.burst,
            clock,
            max_keys=MAX_TRACKED_CLIENTS,
            ipv6_prefix_length=ipv6_prefix_length,
            buckets=buckets,
        )
        self._lookups: SingleFlight[str, Location] = SingleFlight()
        self._slots = Slots(settings.concurrency, settings.max_waiting)
        self._asks: dict[str, Slots] = {}
        self._ask_slots = max(1, settings.concurrency // max(1, askers))

    def peek(self, identifier: Identifier) -> Location | None:
        """Where the account lives, if this process knows at hand (the memory backend),
        without waiting; ``None`` when :meth:`locate` must be asked."""
        holders = self._cache.peek(identifier)
        if not holders:  # unknown, or "nobody" (whose login still asks the placements)
            return None
        self._on_cache(True)
        return Location(holders, True, "cache")

    async def locate(
        self,
        identifier: Identifier,
        client_ip: str,
        *,
        creating_on: str | None = None,
    ) -> Location:
        """Who holds ``identifier``: from the cache, else from the sources (also when the
        cache, Redis, cannot be read); ``429`` past the limits.

        ``creating_on``: that homeserver (by its first ingress point's name) asks before it
        creates an account or binds an address. A cached "nobody" is asked again (a wrong
        "free" makes a duplicate, which is forever); the per-client limits do not apply (the
        asks are bounded by ``directory.concurrency`` and ``max_waiting``); and the asking
        homeserver itself is not asked (it refuses its own duplicates), so the answer says
        nothing of it: it is not cached, nor shared with a lookup that asks everyone."""
        cached = await self._cached(identifier)
        if creating_on is not None and cached is not None and not cached:
            cached = None
        self._on_cache(cached is not None)
        if cached is not None:
            return Location(cached, True, "cache")
        flight = identifier.key if creating_on is None else f"{identifier.key}\n{creating_on}"
        slots = self._slots_for(creating_on)
        if not self._lookups.in_flight(flight):
            wait = 0.0 if creating_on is not None else self._limits.take(client_ip)
            if wait > 0:
                self._on_lookup("-", "limited", 0.0)
                raise errors.limit_exceeded(wait)
            if slots.full:
                self._on_lookup("-", "limited", 0.0)
                raise errors.limit_exceeded(1.0)
        return await self._lookups.run(
            flight, lambda: self._look_up(identifier, creating_on, slots)
        )

    def _slots_for(self, creating_on: str | None) -> Slots:
        """Clients' lookups share ``directory.concurrency`` slots (and ``max_waiting``);
        homeservers' asks have as many again, split evenly among the homeservers that may
        ask (at least one each, with ``max_waiting`` of its own). A flood of asks through one
        homeserver (its ``requestToken`` needs no login, and Synapse asks before its own
        rate limit) makes neither logins nor the other homeservers' asks wait or fail, and
        the lookups at once stay about twice ``directory.concurrency``."""
        if creating_on is None:
            return self._slots
        slots = self._asks.get(creating_on)
        if slots is None:
            slots = self._asks[creating_on] = Slots(self._ask_slots, self._settings.max_waiting)
        return slots

    async def _cached(self, identifier: Identifier) -> frozenset[str] | None:
        """The cache's answer; ``None`` also when the cache (Redis) cannot be read: the
        cache is an optimisation, not a dependency, so the sources are asked (within the
        limits; the answer is not cached), rather than the login refused."""
        try:
            return await self._cache.get(identifier)
        except StateUnavailable as e:
            logger.debug("directory: cache unreadable for %s: %s", identifier.tag, e)
            return None

    async def remember(self, identifier: Identifier, homeserver: str) -> None:
        """An account the portal just saw made: found at its first login, even seconds
        later. It is added to the holders already known, never put in their place: a
        registration's answer cannot take a name away from the account that held it."""
        known = await self._cache.get(identifier)
        await self._cache.put(identifier, (known or frozenset()) | {homeserver})

    async def _look_up(
        self, identifier: Identifier, leave_out: str | None, slots: Slots
    ) -> Location:
        location = await slots.run(lambda: self._ask_sources(identifier, leave_out))
        if location.complete and leave_out is None:
            try:
                await self._cache.put(identifier, location.holders)
            except StateUnavailable as e:
                logger.warning("directory: could not remember %s: %s", identifier.tag, e)
        return location

    async def _ask_sources(self, identifier: Identifier, leave_out: str | None) -> Location:
        """The sources in order: the first that finds the account answers; one that cannot
        say leaves the answer incomplete unless a later one finds it."""
        unanswered: list[str] = []
        for source in self._sources:
            started = self._clock.seconds()
            answer = await self._bounded(source, identifier, leave_out)
            seconds = self._clock.seconds() - started
            outcome = _outcome(answer)
            self._on_lookup(source.name, outcome, seconds)
            logger.info(
                "directory %s: %s %s%s (%.1fms)",
                identifier.tag,
                source.name,
                outcome,
                f" on {','.join(sorted(answer.holders))}" if answer.holders else "",
                seconds * 1000,
            )
            unanswered += answer.unanswered
            if answer.holders:
                # Found: that counts even if another homeserver could not say; but then it
                # is not the whole answer (that one may hold the name too): not cached.
                return Location(answer.holders, not unanswered, source.name)
        return Location(frozenset(), not unanswered, self._sources[-1].name)

    async def _bounded(
        self, source: Source, identifier: Identifier, leave_out: str | None
    ) -> SourceAnswer:
        d = defer.ensureDeferred(source.ask(identifier, leave_out))
        if source.bounds_itself:
            return await d
        d.addTimeout(self._settings.timeout, self._clock)  # type: ignore[arg-type]
        try:
            return await d
        except defer.TimeoutError:
            logger.warning(
                "directory: %s did not answer within %gs", source.name, self._settings.timeout
            )
            return SourceAnswer(unanswered=(source.name,))


def _outcome(answer: SourceAnswer) -> str:
    if len(answer.holders) > 1:
        return "several"
    if answer.holders:
        return "found"
    return "unanswered" if answer.unanswered else "not-found"
