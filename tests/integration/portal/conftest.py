"""Fixtures: real homeservers behind real portal processes, shared by the whole portal test
session (see ``tests.harness.portal``). One portal process per mode (redirect, proxy, auto)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.harness.constants import PASSWORD
from tests.harness.portal import Homeservers, PortalProcess, portal_config, portal_homeserver
from tests.harness.synapse import start_all


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
