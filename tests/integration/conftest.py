"""Fixtures that start real Synapse processes (SQLite, loopback, free ports, temp dirs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from synapse_base_cs_url._dev.throwaway_synapse import JsonDict, SynapseProcess, free_port
from tests.harness.constants import PASSWORD, TWIN_SERVER_NAME
from tests.harness.synapse import (
    CUSTOM_AUTH_PROVIDER,
    STARTED,
    StartSynapse,
    StartSynapseWithListeners,
    every_login_type_config,
    module_entry,
    synapse_process,
)


@pytest.fixture(scope="session")
def start_synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartSynapse]:
    """Start a Synapse with ``modules`` and ``extra_config``; all are stopped at session end."""
    started: list[SynapseProcess] = []

    def start(
        server_name: str,
        modules: Sequence[JsonDict] = (),
        extra_config: dict[str, Any] | Callable[[SynapseProcess], dict[str, Any]] | None = None,
    ) -> SynapseProcess:
        """``extra_config`` may be a function of the process (to use its port, say)."""
        proc = synapse_process(server_name, tmp_path_factory.mktemp(server_name), modules=modules)
        proc.config.update(extra_config(proc) if callable(extra_config) else extra_config or {})
        started.append(proc)
        STARTED.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def _start_twin(
    start_synapse: StartSynapse,
    tmp_path_factory: pytest.TempPathFactory,
    label: str,
    modules: Sequence[JsonDict],
) -> SynapseProcess:
    server_name = TWIN_SERVER_NAME
    workdir = tmp_path_factory.mktemp(f"{label}-extra")
    hs = start_synapse(
        server_name,
        modules=[CUSTOM_AUTH_PROVIDER, *modules],
        extra_config=every_login_type_config(workdir, server_name),
    )
    hs.register_user("alice", PASSWORD)
    return hs


@pytest.fixture(scope="session")
def module_hs(
    start_synapse: StartSynapse, tmp_path_factory: pytest.TempPathFactory
) -> SynapseProcess:
    """Synapse with the module (base_cs_url configured) and every login type enabled."""
    modules = [module_entry(base_cs_url="https://cs.example.com/")]
    return _start_twin(start_synapse, tmp_path_factory, "module", modules)


@pytest.fixture(scope="session")
def control_hs(
    start_synapse: StartSynapse, tmp_path_factory: pytest.TempPathFactory
) -> SynapseProcess:
    """The same Synapse config without the module: what Synapse alone answers."""
    return _start_twin(start_synapse, tmp_path_factory, "control", [])


@pytest.fixture(scope="session")
def start_synapse_with_listeners(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StartSynapseWithListeners]:
    """Like ``start_synapse``, plus ``listeners`` (name -> listener template) on free ports.

    Returns the process and ``{name: port}``. Templates with ``type: metrics`` also switch
    on ``enable_metrics``.
    """
    started: list[SynapseProcess] = []

    def start(
        server_name: str,
        modules: Sequence[JsonDict] = (),
        extra_config: dict[str, Any] | None = None,
        listeners: dict[str, JsonDict] | None = None,
    ) -> tuple[SynapseProcess, dict[str, int]]:
        proc = synapse_process(
            server_name,
            tmp_path_factory.mktemp(server_name),
            modules=modules,
            extra_config=extra_config,
        )
        ports: dict[str, int] = {}
        for name, template in (listeners or {}).items():
            ports[name] = free_port()
            listener = {**template, "port": ports[name], "bind_addresses": ["127.0.0.1"]}
            proc.config["listeners"].append(listener)
            if template.get("type") == "metrics":
                proc.config["enable_metrics"] = True
        started.append(proc)
        STARTED.append(proc)
        proc.start()
        return proc, ports

    yield start
    for proc in started:
        proc.stop()
