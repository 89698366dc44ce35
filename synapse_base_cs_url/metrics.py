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

    def amended(self, endpoint: str, rule: str) -> None:
        _counters()[0].labels(self.server_name, endpoint, rule).inc()

    def failed_open(self, endpoint: str, reason: str) -> None:
        _counters()[1].labels(self.server_name, endpoint, reason).inc()
