"""Each homeserver's health, shared by every path that talks to it (login proxy, directory,
gateway, token resolution, discovery), as a load balancer's outlier detection keeps it.

A homeserver that fails ``upstream.failures_to_down`` times in a row (connection refused,
unreachable, timed out: never an HTTP answer, whatever its status) is marked **down**: from
then on nothing waits for it (a request to it is ``503`` at once, which the directory and
the token resolution count as "could not say", so their answers keep their meaning). A probe
(``GET /health``, bounded by ``timeouts.connect``) every ``upstream.probe_interval`` seconds,
jittered, marks it **up** again as soon as it answers below ``500``. Each change is one log
line and the ``homeserver_up`` gauge; each process keeps its own view.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping

from twisted.internet import defer

from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.reactor import Clock, DelayedCall

logger = logging.getLogger("synapse_base_cs_url.portal.upstream")

#: How far a probe's moment is shifted, either way, as a fraction of the interval.
JITTER = 0.2


class HomeserverHealth:
    def __init__(
        self,
        clock: Clock,
        homeservers: Mapping[str, Homeserver],
        *,
        failures_to_down: int,
        probe_interval: float,
        on_change: Callable[[str, bool], None] = lambda name, up: None,
    ) -> None:
        self._clock = clock
        self._failures_to_down = failures_to_down
        self.probe_interval = probe_interval
        self._on_change = on_change
        self._homeservers = homeservers
        self._failures = dict.fromkeys(homeservers, 0)
        self._down: set[str] = set()
        self._probes: dict[str, DelayedCall] = {}
        self._probe: Callable[[Homeserver], Awaitable[bool]] | None = None
        self._closed = False
        for name in self._failures:
            on_change(name, True)

    def start_probing(self, probe: Callable[[Homeserver], Awaitable[bool]]) -> None:
        """``probe(homeserver)``: whether it answers now (never raises)."""
        self._probe = probe

    def is_down(self, name: str) -> bool:
        return name in self._down

    @property
    def down(self) -> frozenset[str]:
        return frozenset(self._down)

    def succeeded(self, name: str) -> None:
        if name not in self._failures:
            return
        self._failures[name] = 0
        if name in self._down:
            self._mark_up(name, "it answered")

    def failed(self, name: str, why: str) -> None:
        if name not in self._failures:
            return  # not a homeserver (an operator's directory over HTTP)
        count = self._failures[name] + 1
        self._failures[name] = count
        if count >= self._failures_to_down and name not in self._down:
            self._down.add(name)
            self._on_change(name, False)
            logger.warning(
                "homeserver %s is down: %d failures in a row (the last: %s); nothing waits "
                "for it until a probe finds it up",
                name,
                count,
                why,
            )
            self._schedule(name)

    def close(self) -> None:
        self._closed = True
        for call in self._probes.values():
            if call.active():
                call.cancel()
        self._probes.clear()

    def _mark_up(self, name: str, why: str) -> None:
        self._cancel_probe(name)
        self._down.discard(name)
        self._failures[name] = 0
        self._on_change(name, True)
        logger.info("homeserver %s is up again: %s", name, why)

    def _cancel_probe(self, name: str) -> None:
        call = self._probes.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def _schedule(self, name: str) -> None:
        self._cancel_probe(name)  # one probe chain per homeserver
        if self._closed or self._probe is None:
            return
        delay = self.probe_interval * (1 + random.uniform(-JITTER, JITTER))
        self._probes[name] = self._clock.callLater(
            delay, lambda: defer.ensureDeferred(self._run_probe(name))
        )

    async def _run_probe(self, name: str) -> None:
        self._probes.pop(name, None)
        if self._closed or name not in self._down or self._probe is None:
            return
        if await self._probe(self._homeservers[name]):
            if name in self._down:
                self._mark_up(name, "its probe answered")
        else:
            self._schedule(name)
