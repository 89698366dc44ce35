"""Real Synapse processes for the tests: configs, a registry of what was started (for logs
on failure), and Synapses that must refuse to start."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from synapse_base_cs_url._dev.throwaway_synapse import JsonDict, SynapseProcess
from tests.harness.constants import (
    AS_TOKEN,
    CUSTOM_LOGIN_SECRET,
    JWT_SECRET,
    MODULE,
    REPO_ROOT,
    SYNAPSE_MODULES,
)

#: Every Synapse started by a fixture in this session, newest last.
STARTED: list[SynapseProcess] = []

StartSynapse = Callable[..., SynapseProcess]
StartSynapseWithListeners = Callable[..., tuple[SynapseProcess, dict[str, int]]]

CUSTOM_AUTH_PROVIDER = {
    "module": f"{SYNAPSE_MODULES}.auth_provider.FixedSecretAuthProvider",
    "config": {"secret": CUSTOM_LOGIN_SECRET},
}

#: Listener templates by name; each gets its own free port on 127.0.0.1.
X_FORWARDED_CLIENT_LISTENER: JsonDict = {
    "type": "http",
    "tls": False,
    "x_forwarded": True,
    "resources": [{"names": ["client"], "compress": False}],
}
METRICS_LISTENER: JsonDict = {"type": "metrics"}


def module_entry(**config: Any) -> JsonDict:
    return {"module": MODULE, "config": config}


def synapse_process(server_name: str, workdir: Path, **kwargs: Any) -> SynapseProcess:
    """A Synapse that can load the tests' helper modules."""
    return SynapseProcess(server_name, workdir=workdir, extra_pythonpath=[str(REPO_ROOT)], **kwargs)


def start_all(homeservers: list[SynapseProcess]) -> None:
    """Start Synapses in parallel (each start waits for /versions)."""
    STARTED.extend(homeservers)
    with ThreadPoolExecutor(len(homeservers)) as pool:
        for future in [pool.submit(hs.start) for hs in homeservers]:
            future.result()


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


def startup_failure_output(workdir: Path, modules: Sequence[JsonDict], timeout: float = 60) -> str:
    """Start a Synapse that must refuse to start; return what it printed."""
    hs = synapse_process("broken.test", workdir, modules=modules)
    proc = hs.spawn()
    try:
        code = proc.wait(timeout)
    except Exception:
        hs.stop()
        raise AssertionError(f"Synapse was expected to fail at startup:\n{hs.logs()}") from None
    assert code != 0, hs.logs()
    return hs.console_path.read_text()
