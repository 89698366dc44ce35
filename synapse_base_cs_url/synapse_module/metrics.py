"""Prometheus counters, exported by Synapse's own metrics listener.

Synapse serves prometheus_client's default registry on its ``metrics`` listener/resource, so
registering there is all it takes. A registry accepts each name once per process, while the
module may be instantiated once per homeserver (several can share a process): the counters
are created once, and every series carries a ``server_name`` label, as Synapse's own metrics
do in recent releases, to keep those homeservers apart.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import attr
from prometheus_client import Counter

RESPONSES_NAME = "synapse_base_cs_url_responses"
FAIL_OPEN_NAME = "synapse_base_cs_url_fail_open"

#: ``reason`` of a fail-open event where the response went out without the field.
HOOK_ERROR = "hook_error"


@functools.cache
def _counters() -> tuple[Counter, Counter]:
    responses = Counter(
        RESPONSES_NAME,
        "Login/registration responses given base_cs_url, by the rule that chose the URL "
        "('default': the fallback, 'compute': the compute function)",
        ["server_name", "endpoint", "rule"],
    )
    fail_open = Counter(
        FAIL_OPEN_NAME,
        "Times synapse-base-cs-url fell back instead of failing a login: 'hook_error' sent "
        "Synapse's response unchanged, 'compute_error'/'compute_invalid' skipped the compute "
        "function",
        ["server_name", "endpoint", "reason"],
    )
    return responses, fail_open


@attr.s(auto_attribs=True, frozen=True, slots=True)
class ModuleMetrics:
    """The counters as seen by one homeserver."""

    server_name: str
    # (counter index, endpoint, label) -> child: labels() is a locked dict lookup per call.
    _children: dict[tuple[int, str, str], Any] = attr.ib(
        factory=dict, init=False, eq=False, repr=False
    )

    def prepare(
        self, endpoints: Iterable[str], rule_names: Iterable[str], reasons: Iterable[str]
    ) -> None:
        """Create every series at 0, so ``rate()`` and alerts work before the first event."""
        responses, fail_open = _counters()
        rule_names = tuple(rule_names)
        reasons = tuple(reasons)
        for endpoint in endpoints:
            for rule in rule_names:
                responses.labels(self.server_name, endpoint, rule)
            for reason in reasons:
                fail_open.labels(self.server_name, endpoint, reason)

    def _child(self, index: int, endpoint: str, label: str) -> Any:
        key = (index, endpoint, label)
        child = self._children.get(key)
        if child is None:
            child = _counters()[index].labels(self.server_name, endpoint, label)
            self._children[key] = child
        return child

    def amended(self, endpoint: str, rule: str) -> None:
        self._child(0, endpoint, rule).inc()

    def failed_open(self, endpoint: str, reason: str) -> None:
        self._child(1, endpoint, reason).inc()
