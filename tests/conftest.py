"""Show the logs of the real Synapse processes a test used when that test fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess
from tests.harness.synapse import STARTED


def _processes_in(value: Any, depth: int = 0) -> Iterator[SynapseProcess]:
    if isinstance(value, SynapseProcess):
        yield value
    elif depth < 2 and hasattr(value, "__dict__"):
        for attr in vars(value).values():
            yield from _processes_in(attr, depth + 1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        used = [p for v in funcargs.values() for p in _processes_in(v)] or STARTED[-3:]
        for proc in dict.fromkeys(used):
            report.sections.append((f"Synapse log: {proc.server_name}", proc.logs(12000)))
    return report
