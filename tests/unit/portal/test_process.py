"""One portal process on an in-memory reactor: connection deadlines and the cap, readiness,
drain and reload."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.process import PortalProcess
from tests.harness.deferreds import settle

RAW: dict[str, Any] = {
    "public_baseurl": "https://portal.example.com",
    "homeservers": {
        "hs1": {"base_url": "https://hs1.example.com"},
        "hs2": {"base_url": "https://hs2.example.com"},
    },
    "default_homeserver": "hs1",
    "connections": {"max": 3, "header_timeout": 5, "body_timeout": 7, "idle_timeout": 60},
}
LOGIN = b'{"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "zed"}}'


def service(**overrides: Any) -> tuple[PortalProcess, MemoryReactorClock]:
    raw = copy.deepcopy(RAW)
    raw.update(overrides)
    reactor = MemoryReactorClock()
    return PortalProcess(PortalConfig.from_config(raw), reactor), reactor


def connect(svc: PortalProcess) -> tuple[Any, StringTransport]:
    channel = svc.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


def post_login(body: bytes = LOGIN) -> bytes:
    return (
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: portal\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def test_a_request_is_answered_and_the_connection_kept() -> None:
    svc, _ = service()
    channel, transport = connect(svc)
    channel.dataReceived(post_login())
    assert transport.value().startswith(b"HTTP/1.1 307 ")
    assert not transport.disconnecting


def test_headers_must_arrive_within_the_header_timeout() -> None:
    svc, reactor = service()
    channel, transport = connect(svc)
    channel.dataReceived(b"POST /_matrix/client/v3/login HTTP/1.1\r\n")
    for _ in range(4):  # trickling resets Twisted's idle timer, not the header deadline
        reactor.advance(1)
        channel.dataReceived(b"X")
    assert not transport.disconnecting
    reactor.advance(1.1)
    assert transport.disconnecting or transport.disconnected
    assert svc.metrics.connection_timeouts.labels("header")._value.get() == 1


def test_the_body_must_arrive_within_the_body_timeout() -> None:
    svc, reactor = service()
    channel, transport = connect(svc)
    channel.dataReceived(post_login()[:-5])  # the whole head, most of the body
    reactor.advance(6.9)
    assert not transport.disconnecting
    reactor.advance(0.2)
    assert transport.disconnecting or transport.disconnected
    assert svc.metrics.connection_timeouts.labels("body")._value.get() == 1


def test_a_quick_client_meets_no_deadline() -> None:
    svc, reactor = service()
    channel, transport = connect(svc)
    channel.dataReceived(post_login())
    reactor.advance(30)  # idle, between requests: only the idle timeout applies
    assert not transport.disconnecting
    channel.dataReceived(post_login())
    assert transport.value().count(b"HTTP/1.1 307 ") == 2


def test_past_the_cap_a_connection_gets_503_and_is_closed() -> None:
    svc, _ = service()
    for _ in range(3):
        connect(svc)
    _, refused = connect(svc)
    assert refused.value().startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b'"errcode": "M_UNAVAILABLE"' in refused.value()
    assert refused.disconnecting
    assert svc.metrics.refused_connections._value.get() == 1
    assert len(svc.site.channels) == 3


def test_drain_fails_readiness_closes_idle_connections_and_waits_for_busy_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc, reactor = service(mode="proxy", shutdown_grace=2)
    _, idle_transport = connect(svc)
    busy, busy_transport = connect(svc)
    busy.dataReceived(post_login())  # proxied: waits for a homeserver that never answers
    assert settle(svc.not_ready()) is None
    caplog.set_level(logging.INFO, logger="synapse_base_cs_url.portal")
    d = defer.ensureDeferred(svc.drain())
    assert settle(svc.not_ready()) == "draining"
    assert idle_transport.disconnecting
    assert not busy_transport.disconnecting
    assert "draining: 1 request(s) under way, up to 2s" in caplog.text
    reactor.advance(1)
    assert not d.called
    reactor.advance(1.1)
    assert d.called
    assert "draining: 1 request(s) still under way after 2s" in caplog.text


def test_reload_takes_a_valid_file_and_keeps_the_config_on_a_broken_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    svc, _ = service()
    channel, transport = connect(svc)
    channel.dataReceived(post_login())
    assert b"Location: https://hs1.example.com/" in transport.value()
    path = tmp_path / "portal.yaml"
    changed = copy.deepcopy(RAW)
    changed["routes"] = [{"match": {"localpart": "zed"}, "homeserver": "hs2"}]
    changed["connections"]["max"] = 5
    path.write_text(yaml.safe_dump(changed))
    caplog.set_level(logging.INFO, logger="synapse_base_cs_url.portal")
    assert svc.reload(str(path))
    assert "a change to 'connections' takes effect at the next restart" in caplog.text
    transport.clear()
    channel.dataReceived(post_login())
    assert b"Location: https://hs2.example.com/" in transport.value()
    path.write_text("homeservers: {}\n")
    assert not svc.reload(str(path))
    assert "reload: invalid config" in caplog.text
    assert "homeservers: must name at least one homeserver" in caplog.text
    transport.clear()
    channel.dataReceived(post_login())
    assert b"Location: https://hs2.example.com/" in transport.value()


def test_several_processes_without_an_sso_section_say_so_and_offer_no_sso() -> None:
    svc, _ = service(workers=2)
    channel, transport = connect(svc)
    channel.dataReceived(
        b"GET /_matrix/client/v3/login/sso/redirect?redirectUrl=https%3A%2F%2Fapp HTTP/1.1\r\n"
        b"Host: portal\r\n\r\n"
    )
    answer = transport.value()
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert b"needs an 'sso' section with sso.signing_key_file" in answer
