"""Prometheus counters, exported by Synapse's own metrics listener.

Synapse serves prometheus_client's default registry on its ``metrics`` listener/resource, so
registering there is all it takes. A registry accepts each name once per process, while the
module may be instantiated once per homeserver (several can share a process): the counters
are registered once, and every series carries a ``server_name`` label, as Synapse's own
metrics do in recent releases, to keep those homeservers apart.

The counts are plain numbers in a dict, read by a collector when Prometheus scrapes: a login
pays one dict update, not a lock and a label lookup (``prometheus_client.Counter``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

import attr
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily

RESPONSES_NAME = "synapse_base_cs_url_responses"
FAIL_OPEN_NAME = "synapse_base_cs_url_fail_open"

#: ``reason`` of a fail-open event where the response went out without the field.
HOOK_ERROR = "hook_error"

Labels = tuple[str, str, str]
"""(server_name, endpoint, rule or reason)."""


class CountsCollector:
    """Counters whose values live in ``counts``; collected on each scrape."""

    def __init__(self, name: str, documentation: str, label_names: Iterable[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.label_names = list(label_names)
        self.counts: dict[Labels, float] = {}

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.label_names)
        # list(): a snapshot, since the reactor thread may add a series meanwhile.
        for labels, value in list(self.counts.items()):
            family.add_metric(labels, value)
        yield family


@attr.s(auto_attribs=True, frozen=True, slots=True)
class _Collectors:
    responses: CountsCollector
    fail_open: CountsCollector


@functools.cache
def _collectors() -> _Collectors:
    responses = CountsCollector(
        RESPONSES_NAME,
        "Login/registration responses given base_cs_url, by the rule that chose the URL "
        "('default': the fallback, 'compute': the compute function)",
        ["server_name", "endpoint", "rule"],
    )
    fail_open = CountsCollector(
        FAIL_OPEN_NAME,
        "Times synapse-base-cs-url fell back instead of failing a login: 'hook_error' sent "
        "Synapse's response unchanged, 'compute_error'/'compute_invalid' skipped the compute "
        "function",
        ["server_name", "endpoint", "reason"],
    )
    REGISTRY.register(responses)
    REGISTRY.register(fail_open)
    return _Collectors(responses, fail_open)


@attr.s(auto_attribs=True, frozen=True, slots=True)
class ModuleMetrics:
    """The counters as seen by one homeserver."""

    server_name: str

    def prepare(
        self, endpoints: Iterable[str], rule_names: Iterable[str], reasons: Iterable[str]
    ) -> None:
        """Create every series at 0, so ``rate()`` and alerts work before the first event."""
        collectors = _collectors()
        responses, fail_open = collectors.responses, collectors.fail_open
        rule_names = tuple(rule_names)
        reasons = tuple(reasons)
        for endpoint in endpoints:
            for rule in rule_names:
                responses.counts.setdefault((self.server_name, endpoint, rule), 0)
            for reason in reasons:
                fail_open.counts.setdefault((self.server_name, endpoint, reason), 0)

    def amended(self, endpoint: str, rule: str) -> None:
        counts = _collectors().responses.counts
        key = (self.server_name, endpoint, rule)
        counts[key] = counts.get(key, 0) + 1

    def failed_open(self, endpoint: str, reason: str) -> None:
        counts = _collectors().fail_open.counts
        key = (self.server_name, endpoint, reason)
        counts[key] = counts.get(key, 0) + 1
