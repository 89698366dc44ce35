"""What one client may make the portal remember (``records.py``), through the real wiring:
nothing is written for a client past ``clients.records_*``, and each kind of record has a
store of its own, so a flood of one cannot push out another."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.testing import MemoryReactorClock

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.identifier import LOCALPART, Identifier
from synapse_base_cs_url.portal.sso.callback import CALLBACK_PATH, callback_url
from synapse_base_cs_url.portal.wiring import MAX_RECORDS, Lasting
from tests.harness.deferreds import settle
from tests.harness.requests import CLIENT_IP, InMemoryPortal, portal_config

RESET_TOKEN = b"/_matrix/client/v3/account/password/email/requestToken"
BURST = 3


def limited_portal(**overrides: Any) -> InMemoryPortal:
    return InMemoryPortal(portal_config(clients={"records_burst": BURST}, **overrides))


def request_token(portal: InMemoryPortal, secret: str, client_ip: str = CLIENT_IP) -> Any:
    # No address: before, such a step never met a limit, yet its secret was kept for a day.
    body = json.dumps({"client_secret": secret, "send_attempt": 1}).encode()
    return portal.request(b"POST", RESET_TOKEN, body, client_ip=client_ip)


def test_a_client_past_its_limit_has_nothing_more_remembered() -> None:
    portal = limited_portal()
    for i in range(BURST):
        assert request_token(portal, f"secret-{i}").code == 307
    refused = request_token(portal, "one-too-many")
    assert refused.code == 429, refused.body
    assert refused.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert int(refused.header(b"Retry-After") or b"0") >= 1
    secrets = portal.process.lasting.reset_secrets
    assert len(secrets) == BURST
    # Another client is not held back by this one; one in the same IPv6 /64 is.
    assert request_token(portal, "elsewhere", client_ip="198.51.100.7").code == 307


def test_an_ipv6_client_is_counted_by_its_64() -> None:
    portal = limited_portal()
    for i in range(BURST):
        assert request_token(portal, f"s-{i}", client_ip=f"2001:db8:1:2::{i + 1}").code == 307
    assert request_token(portal, "rotated", client_ip="2001:db8:1:2:ffff::9").code == 429
    assert request_token(portal, "next-64", client_ip="2001:db8:1:3::1").code == 307


def test_each_kind_of_record_has_a_store_of_its_own() -> None:
    """Reset secrets and registration placements shared one 100,000-entry map: 100,000
    cheap requests dropped a registration's placement mid-flow."""
    reactor = MemoryReactorClock()  # type: ignore[no-untyped-call]
    config = PortalConfig.from_config(portal_config())
    lasting = Lasting.build(config, reactor)
    names = lasting.placements.names
    settle(names.put(Identifier(LOCALPART, "alice").key, "hs2", 3600))
    for i in range(MAX_RECORDS + 1):
        settle(lasting.reset_secrets.put(f"flood-{i}", "hs1", 3600))
    assert len(lasting.reset_secrets) == MAX_RECORDS
    assert settle(names.get(Identifier(LOCALPART, "alice").key)) == "hs2"
    stores = [
        lasting.placements.names,
        lasting.placements.clients,
        lasting.placements.sessions,
        lasting.reset_secrets,
    ]
    assert len({id(store._memory) for store in stores}) == len(stores)
    assert len({store._prefix for store in stores}) == len(stores)


def test_sso_callbacks_are_limited_per_client() -> None:
    """A signed callback can be replayed with any ``loginToken``: each is a record."""
    portal = limited_portal()
    signer = portal.process.lasting.signer_for(portal.config)
    url = callback_url(
        portal.config.public_baseurl,
        signer,
        "hs1",
        "https://app.example/",
        portal.reactor.seconds(),
    )
    query = url.partition("?")[2]
    answers = [
        portal.request(b"GET", CALLBACK_PATH + f"?{query}&loginToken=t{i}".encode()).code
        for i in range(BURST + 1)
    ]
    assert answers[:BURST] == [200] * BURST  # the confirmation page (not whitelisted)
    assert answers[BURST] == 429
    assert len(portal.process.lasting.sso_tokens) == BURST  # type: ignore[arg-type]
    assert portal.metric("synapse_base_cs_url_portal_sso_callbacks_total", result="limited") == 1
