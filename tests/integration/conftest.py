"""Fixtures that start real Synapse processes (SQLite, loopback, free ports, temp dirs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from synapse_base_cs_url._dev.throwaway_synapse import JsonDict, SynapseProcess
from tests.conftest import STARTED

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE = "synapse_base_cs_url.BaseCsUrlModule"
PASSWORD = "correct horse battery staple"
JWT_SECRET = "jwt-secret-for-tests-only-0123456789"
AS_TOKEN = "as_token_for_tests"
CUSTOM_LOGIN_SECRET = "open sesame"

StartSynapse = Callable[..., SynapseProcess]


def module_entry(**config: Any) -> JsonDict:
    return {"module": MODULE, "config": config}


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
        proc = SynapseProcess(
            server_name,
            modules=modules,
            workdir=tmp_path_factory.mktemp(server_name),
            extra_pythonpath=[str(REPO_ROOT)],
        )
        proc.config.update(extra_config(proc) if callable(extra_config) else extra_config or {})
        started.append(proc)
        STARTED.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def every_login_type_config(workdir: Path, server_name: str) -> JsonDict:
    """Config enabling every login type the tests exercise; identical for module and twin."""
    as_file = appservice_config_file(workdir, server_name, f"@bridge_.*:{server_name}")
    return {
        "public_baseurl": "https://public.example.com/",
        "default_identity_server": "https://identity.example.com",
        "extra_well_known_client_content": {"org.example.custom": {"kept": True}},
        "jwt_config": {"enabled": True, "secret": JWT_SECRET, "algorithm": "HS256"},
        "app_service_config_files": [str(as_file)],
        "login_via_existing_session": {"enabled": True, "require_ui_auth": False},
        "rc_login": {
            "address": {"per_second": 10000, "burst_count": 10000},
            "account": {"per_second": 10000, "burst_count": 10000},
            # Strict per-account failure limit, so one test can trip it for one user.
            "failed_attempts": {"per_second": 0.001, "burst_count": 3},
        },
    }


CUSTOM_AUTH_PROVIDER = {
    "module": "tests.support.auth_provider.FixedSecretAuthProvider",
    "config": {"secret": CUSTOM_LOGIN_SECRET},
}


#: Module and control twins share a server name so that their answers can be compared byte
#: for byte.
TWIN_SERVER_NAME = "twin.test"


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


# --- extra listeners (x_forwarded, metrics) and appservices; used by test_computed_urls ---

#: Listener templates by name; each gets its own free port on 127.0.0.1.
X_FORWARDED_CLIENT_LISTENER: JsonDict = {
    "type": "http",
    "tls": False,
    "x_forwarded": True,
    "resources": [{"names": ["client"], "compress": False}],
}
METRICS_LISTENER: JsonDict = {"type": "metrics"}

StartSynapseWithListeners = Callable[..., tuple[SynapseProcess, dict[str, int]]]


@pytest.fixture(scope="session")
def start_synapse_with_listeners(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StartSynapseWithListeners]:
    """Like ``start_synapse``, plus ``listeners`` (name -> listener template) on free ports.

    Returns the process and ``{name: port}``. Templates with ``type: metrics`` also switch
    on ``enable_metrics``.
    """
    from synapse_base_cs_url._dev.throwaway_synapse import free_port

    started: list[SynapseProcess] = []

    def start(
        server_name: str,
        modules: Sequence[JsonDict] = (),
        extra_config: dict[str, Any] | None = None,
        listeners: dict[str, JsonDict] | None = None,
    ) -> tuple[SynapseProcess, dict[str, int]]:
        proc = SynapseProcess(
            server_name,
            modules=modules,
            extra_config=extra_config,
            workdir=tmp_path_factory.mktemp(server_name),
            extra_pythonpath=[str(REPO_ROOT)],
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


def appservice_config_file(workdir: Path, server_name: str, user_regex: str) -> Path:
    """An application service registration (no URL: Synapse never calls it) for ``AS_TOKEN``."""
    registration = {
        "id": "bridge",
        "url": None,
        "as_token": AS_TOKEN,
        "hs_token": "hs_token_for_tests",
        "sender_localpart": "bridgebot",
        "namespaces": {
            "users": [{"exclusive": True, "regex": user_regex}],
            "rooms": [],
            "aliases": [],
        },
        "rate_limited": False,
    }
    path = workdir / "appservice.yaml"
    path.write_text(yaml.safe_dump(registration))
    return path


def startup_failure_output(workdir: Path, modules: Sequence[JsonDict]) -> str:
    """Start a Synapse that must refuse to start; return what it printed."""
    hs = SynapseProcess(
        "broken.test", modules=modules, workdir=workdir, extra_pythonpath=[str(REPO_ROOT)]
    )
    assert hs.start_expecting_failure() != 0
    return hs.console_path.read_text()
