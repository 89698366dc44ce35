"""Two (or three) real homeservers behind real portal processes: the homeservers' config and
the portal.yaml the portal tests share.

- ``hs1`` (``hs1.test``) and ``hs2`` (``hs2.test``) run the module, each with its own
  ``base_cs_url`` (its real loopback URL, so clients that follow it really get there).
  ``hs2``'s listener has ``x_forwarded: true``; ``hs1``'s has not.
- ``plain`` (``plain.test``) runs Synapse without the module and without ``public_baseurl``:
  its logins carry neither ``base_cs_url`` nor ``well_known``.
- Every homeserver records the IP Synapse assigns to each login (``login_ip_recorder``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attr
import pytest

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess
from tests.harness.constants import MODULE, SYNAPSE_MODULES
from tests.harness.synapse import module_entry, synapse_process
from tests.in_synapse.login_ip_recorder import recorded

__all__ = ["ROUTES", "Homeservers", "PortalProcess", "portal_config", "portal_homeserver"]

ROUTES = [
    {"name": "hs2-users", "match": {"user_id": "@.*:hs2\\.test"}, "homeserver": "hs2"},
    {"name": "hs2-localparts", "match": {"localpart": "h2_.*"}, "homeserver": "hs2"},
    {"name": "dept2-email", "match": {"address": ".*@dept2\\.example\\.com"}, "homeserver": "hs2"},
    {"name": "plain-users", "match": {"localpart": "p_.*"}, "homeserver": "plain"},
]


@attr.s(auto_attribs=True)
class Homeservers:
    hs1: SynapseProcess
    hs2: SynapseProcess
    plain: SynapseProcess
    recorders: dict[str, Path]

    def by_name(self, name: str) -> SynapseProcess:
        hs: SynapseProcess = getattr(self, name)
        return hs

    def logins_recorded(self, name: str, device_id: str) -> list[dict[str, Any]]:
        return [r for r in recorded(str(self.recorders[name])) if r["device_id"] == device_id]


def portal_homeserver(
    tmp_path_factory: pytest.TempPathFactory,
    server_name: str,
    *,
    module: bool,
    x_forwarded: bool = False,
) -> tuple[SynapseProcess, Path]:
    workdir = tmp_path_factory.mktemp(server_name)
    recorder = workdir / "logins.jsonl"
    hs = synapse_process(server_name, workdir)
    modules = [
        {
            "module": f"{SYNAPSE_MODULES}.login_ip_recorder.LoginIpRecorder",
            "config": {"path": str(recorder)},
        }
    ]
    if module:
        modules.append(module_entry(base_cs_url=hs.base_url))
    hs.config["modules"] = modules
    hs.config["listeners"][0]["x_forwarded"] = x_forwarded
    # Registration through the portal's client-server gateway (user-interactive, dummy).
    hs.config["enable_registration"] = True
    hs.config["enable_registration_without_verification"] = True
    # Room for the gateway's 50 MB streaming test.
    hs.config["max_upload_size"] = "100M"
    return hs, recorder


def homeserver_entries(
    homeservers: dict[str, SynapseProcess], **files: dict[str, Path]
) -> dict[str, dict[str, str]]:
    """Each homeserver as portal.yaml names it: its ``base_url`` and ``server_name``, and
    each file given by key (``admin_token_file=tokens``, ``placement_secret_file=secrets``:
    homeserver name -> path)."""
    return {
        name: {
            "base_url": hs.base_url,
            "server_name": hs.server_name,
            **{key: str(paths[name]) for key, paths in files.items() if name in paths},
        }
        for name, hs in homeservers.items()
    }


def placement_secrets(workdir: Path, names: Iterable[str]) -> dict[str, Path]:
    """A fresh placement secret per homeserver, each in a file of its own."""
    files = {}
    for name in names:
        files[name] = workdir / f"{name}.secret"
        files[name].write_text(secrets.token_hex(24) + "\n")
    return files


def placement_module(hs: SynapseProcess, portal_url: str, secret: Path, **extra: Any) -> None:
    """Turn on the module's ``placement`` (ask ``portal_url`` before an account or address
    is made, answer its lookups by ``secret``) in ``hs``'s config."""
    for module in hs.config["modules"]:
        if module["module"] == MODULE:
            module["config"]["placement"] = {
                "portal_url": portal_url,
                "secret_file": str(secret),
                "timeout": 2,
                **extra,
            }


def portal_config(homeservers: dict[str, SynapseProcess], **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "public_baseurl": "https://portal.example.com",
        "mode": "redirect",
        "homeservers": {name: {"base_url": hs.base_url} for name, hs in homeservers.items()},
        "routes": ROUTES,
        "default_homeserver": "hs1",
        "discovery_cache_ttl": 2,
    }
    config.update(overrides)
    return config
