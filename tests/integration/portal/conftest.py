"""What the portal's integration tests share: throwaway portal processes, stopped at the end
of the module that started them (a module may define its own ``start`` instead)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess


@pytest.fixture(scope="module")
def start(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., PortalProcess]]:
    """``start(config, label)``: a started portal (``label`` names its work directory)."""
    started: list[PortalProcess] = []

    def run(config: dict[str, Any], label: str = "portal") -> PortalProcess:
        portal = PortalProcess(config, tmp_path_factory.mktemp(label))
        started.append(portal)
        return portal.start()

    yield run
    for portal in started:
        portal.stop()
