"""Fixtures that start real processes (SQLite, loopback, free ports, temp dirs): Synapses
with the module, and real homeservers behind real portal processes (shared by the portal and
tools tests; see ``tests.harness.portal``), one portal per mode (redirect, proxy, auto)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import requests

from synapse_base_cs_url._dev.throwaway_synapse import JsonDict, SynapseProcess, free_port
from tests.harness.constants import PASSWORD, TWIN_SERVER_NAME
from tests.harness.log_secrets import secrets_in_portal_logs
from tests.harness.portal import Homeservers, PortalProcess, portal_config, portal_homeserver
from tests.harness.synapse import (
    CUSTOM_AUTH_PROVIDER,
    STARTED,
    StartSynapse,
    StartSynapseWithListeners,
    every_login_type_config,
    module_entry,
    start_all,
    synapse_process,
)


@pytest.fixture(scope="session", autouse=True)
def portal_logs_carry_no_secret(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Once every test has run: no portal log, of any test (errors provoked included),
    carries a token, a login token, the tests' password or an e-mail address."""
    yield
    found = secrets_in_portal_logs(tmp_path_factory.getbasetemp())
    assert found == [], "portal logs carry secrets:\n" + "\n".join(found[:20])


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


# --- homeservers behind portals -------------------------------------------------------------


@pytest.fixture(scope="session")
def homeservers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeservers]:
    hs1, rec1 = portal_homeserver(tmp_path_factory, "hs1.test", module=True)
    hs2, rec2 = portal_homeserver(tmp_path_factory, "hs2.test", module=True, x_forwarded=True)
    plain, rec3 = portal_homeserver(tmp_path_factory, "plain.test", module=False)
    try:
        start_all([hs1, hs2, plain])
        for user in ("alice", "bob"):
            hs1.register_user(user, PASSWORD)
        for user in ("h2_carol", "dave"):
            hs2.register_user(user, PASSWORD)
        plain.register_user("p_erin", PASSWORD)
        admin = hs2.register_user("admin", PASSWORD, admin=True)
        token = hs2.password_login(admin, PASSWORD).json()["access_token"]
        result = requests.put(
            f"{hs2.base_url}/_synapse/admin/v2/users/@dave:hs2.test",
            json={"threepids": [{"medium": "email", "address": "dave@dept2.example.com"}]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert result.status_code == 200, result.text
        yield Homeservers(hs1, hs2, plain, {"hs1": rec1, "hs2": rec2, "plain": rec3})
    finally:
        for hs in (hs1, hs2, plain):
            hs.stop()


@pytest.fixture(scope="session")
def start_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    started: list[PortalProcess] = []

    def start(label: str, config: dict[str, Any]) -> PortalProcess:
        portal = PortalProcess(config, tmp_path_factory.mktemp(f"portal-{label}"))
        started.append(portal)
        return portal.start()

    yield start
    for portal in started:
        portal.stop()


@pytest.fixture(scope="session")
def portals(homeservers: Homeservers, start_portal: Any) -> dict[str, PortalProcess]:
    """One portal per mode, all with hs1, hs2 and plain behind them."""
    named = {"hs1": homeservers.hs1, "hs2": homeservers.hs2, "plain": homeservers.plain}
    return {
        mode: start_portal(mode, portal_config(named, mode=mode))
        for mode in ("redirect", "proxy", "auto")
    }
