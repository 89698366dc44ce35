"""Which address does the homeserver attribute a login to?

The portal listens on 127.0.0.1 and reaches the homeservers from 127.0.0.1; the clients here
connect from 127.0.0.2. Each homeserver records the IP Synapse assigns to every login (what
its login spam checker receives, after ``x_forwarded`` handling), so 127.0.0.2 means "the
client", 127.0.0.1 means "the portal". hs1 (no ``x_forwarded``) is the control that shows
the difference is visible at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from tests.harness.clients import new_device, password_body, session_from
from tests.harness.constants import CLIENT_IP, PORTAL_IP
from tests.harness.portal import Homeservers, portal_config

pytestmark = pytest.mark.integration


def login(portal: PortalProcess, user: str, **headers: str) -> str:
    device_id = new_device()
    result = session_from(CLIENT_IP).post(
        f"{portal.url}/_matrix/client/v3/login",
        json=password_body(user, device_id),
        headers=headers,
    )
    assert result.status_code == 200, result.text
    return device_id


def recorded_ips(homeservers: Homeservers, hs_name: str, device_id: str) -> list[str]:
    return [r["ip"] for r in homeservers.logins_recorded(hs_name, device_id)]


def test_proxy_mode_hs2_records_the_client(
    portals: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    device_id = login(portals["proxy"], "h2_carol")
    assert recorded_ips(homeservers, "hs2", device_id) == [CLIENT_IP]


def test_client_sent_x_forwarded_for_is_not_believed(
    portals: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    device_id = login(
        portals["proxy"],
        "h2_carol",
        **{"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
    )
    assert recorded_ips(homeservers, "hs2", device_id) == [CLIENT_IP]


def test_control_without_x_forwarded_the_homeserver_sees_the_portal(
    portals: dict[str, PortalProcess], homeservers: Homeservers
) -> None:
    device_id = login(portals["proxy"], "alice")
    assert recorded_ips(homeservers, "hs1", device_id) == [PORTAL_IP]


@pytest.mark.parametrize("user", ["alice", "h2_carol"])
def test_redirect_mode_the_client_talks_to_the_homeserver_itself(
    portals: dict[str, PortalProcess], homeservers: Homeservers, user: str
) -> None:
    hs_name = "hs2" if user.startswith("h2_") else "hs1"
    device_id = login(portals["redirect"], user)
    assert recorded_ips(homeservers, hs_name, device_id) == [CLIENT_IP]


def test_portal_behind_a_trusted_reverse_proxy_passes_its_client_on(
    homeservers: Homeservers, start_portal: Any
) -> None:
    """``listen.x_forwarded: true`` (the portal behind a TLS-terminating proxy): the portal
    takes the client from the proxy's X-Forwarded-For and hands it on to hs2."""
    named = {"hs1": homeservers.hs1, "hs2": homeservers.hs2, "plain": homeservers.plain}
    portal = start_portal(
        "behind-proxy",
        portal_config(named, mode="proxy", listen={"host": "127.0.0.1", "x_forwarded": True}),
    )
    device_id = login(portal, "h2_carol", **{"X-Forwarded-For": "198.51.100.7"})
    assert recorded_ips(homeservers, "hs2", device_id) == ["198.51.100.7"]
