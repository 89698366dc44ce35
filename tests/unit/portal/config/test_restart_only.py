"""What a reload cannot change, derived from what the process built (``restart_only.py``)."""

from __future__ import annotations

from typing import Any

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.config.restart_only import changed
from synapse_base_cs_url.portal.process import ProcessSettings
from synapse_base_cs_url.portal.wiring import LastingSettings
from tests.harness.requests import portal_config


def settings(**overrides: Any) -> tuple[ProcessSettings, LastingSettings]:
    config = PortalConfig.from_config(portal_config(**overrides))
    return ProcessSettings.of(config), LastingSettings.of(config)


def waiting(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    old, new = settings(**before), settings(**after)
    return changed(old[0], new[0]) + changed(old[1], new[1])


def test_what_a_reload_cannot_change_is_named_by_its_key() -> None:
    assert waiting({}, {}) == []
    assert waiting({}, {"listen": {"port": 9999}}) == ["listen.port"]
    assert waiting({}, {"connections": {"max": 5}, "sso": {"max_tokens": 7}}) == [
        "connections",
        "sso.max_tokens",
    ]
    assert waiting({}, {"metrics": {"port": 9101}}) == ["metrics.listener"]


def test_what_a_reload_changes_is_not_named() -> None:
    # Applied at once: the request class, the URL table and the limits are built anew.
    assert waiting({}, {"listen": {"x_forwarded": True}}) == []
    assert waiting({}, {"metrics": "public", "clients": {"records_burst": 1}}) == []
    assert waiting({}, {"discovery_cache_ttl": 0, "routes": [], "gateway": {"token_ttl": 5}}) == []
