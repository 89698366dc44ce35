"""A homeserver that refuses connections is known at once: an IP literal is connected to
directly; a name still has every address tried, and its end noticed within ATTEMPT_DELAY
(Twisted's default noticed it 0.3 s late, on the next connection-attempt tick)."""

from __future__ import annotations

import copy

import pytest

from synapse_base_cs_url.portal.upstream.endpoints import ATTEMPT_DELAY
from tests.harness.requests import HOMESERVERS, InMemoryPortal, portal_config

ROOMS = b"/_matrix/client/v3/publicRooms"


def gateway(proxy_url: str) -> InMemoryPortal:
    homeservers = copy.deepcopy(HOMESERVERS)
    homeservers["hs1"]["proxy_url"] = proxy_url
    portal = InMemoryPortal(portal_config(client_api="proxy", homeservers=homeservers))
    portal.hs("hs1").refusing = True
    return portal


@pytest.mark.parametrize("proxy_url", ["http://127.0.0.1:8001", "http://[::1]:8001"])
def test_an_ip_literal_that_refuses_is_502_at_once(proxy_url: str) -> None:
    portal = gateway(proxy_url)
    channel = portal.request(b"GET", ROOMS)  # the clock is never advanced
    assert channel.code == 502
    assert "ConnectionRefusedError" in channel.json()["error"]


def test_a_name_that_refuses_is_502_within_the_attempt_delay() -> None:
    portal = gateway("http://hs1.internal:8001")
    channel = portal.request(b"GET", ROOMS)
    assert not channel.responses  # still connecting: the end of the list is a tick away
    portal.advance(ATTEMPT_DELAY)
    assert channel.code == 502
