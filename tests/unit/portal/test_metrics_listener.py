"""Where one portal process serves ``/metrics``: nowhere by default, on the public listener
with ``metrics: public``, or on a listener of its own (``metrics: {host, port}``), opened and
closed with the public one; in a worker, on the socket its parent passed on."""

from __future__ import annotations

import copy
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.process import PortalProcess, StartupError
from tests.harness.deferreds import settle

RAW: dict[str, Any] = {
    "listen": {"host": "127.0.0.1", "port": 8080},
    "public_baseurl": "https://portal.example.com",
    "homeservers": {"hs1": {"base_url": "https://hs1.example.com"}},
    "default_homeserver": "hs1",
}
PROMETHEUS = b"Content-Type: " + PortalMetrics.content_type.encode()


def raw(**overrides: Any) -> dict[str, Any]:
    config = copy.deepcopy(RAW)
    config.update(overrides)
    return config


def service(**overrides: Any) -> tuple[PortalProcess, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    return PortalProcess(PortalConfig.from_config(raw(**overrides)), reactor), reactor


def ask(factory: Any, request: bytes) -> tuple[bytes, StringTransport]:
    """Send ``request`` on a new connection to ``factory``; the answer and the transport."""
    channel = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(request)
    return transport.value(), transport


def get(path: bytes, method: bytes = b"GET") -> bytes:
    return b"%s %s HTTP/1.1\r\nHost: portal\r\n\r\n" % (method, path)


def listeners(reactor: MemoryReactorClock) -> dict[tuple[str, int], Any]:
    return {(interface, port): factory for port, factory, _, interface in reactor.tcpServers}


def listeners_of(svc: PortalProcess) -> list[Any]:
    reactor: Any = svc.reactor
    return [factory for _, factory, _, _ in reactor.tcpServers]


@pytest.mark.parametrize("metrics", [None, False])
def test_by_default_the_public_listener_answers_metrics_like_any_unknown_path(
    metrics: object,
) -> None:
    svc, reactor = service() if metrics is None else service(metrics=metrics)
    settle(svc.start())
    assert list(listeners(reactor)) == [("127.0.0.1", 8080)]  # no other listener
    answer, _ = ask(svc.site, get(b"/metrics"))
    unknown, _ = ask(svc.site, get(b"/nothing-here"))
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert b'"errcode": "M_UNRECOGNIZED"' in answer
    assert answer.split(b"\r\n\r\n", 1)[1] == unknown.split(b"\r\n\r\n", 1)[1].replace(
        b"/nothing-here", b"/metrics"
    )


def test_public_serves_metrics_on_the_public_listener() -> None:
    svc, reactor = service(metrics="public")
    settle(svc.start())
    assert list(listeners(reactor)) == [("127.0.0.1", 8080)]
    answer, _ = ask(svc.site, get(b"/metrics"))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert PROMETHEUS in answer
    assert b"synapse_base_cs_url_portal_logins" in answer


def test_a_listener_of_its_own_serves_only_metrics_and_the_public_one_none() -> None:
    svc, reactor = service(metrics={"host": "127.0.0.2", "port": 9101})
    settle(svc.start())
    opened = listeners(reactor)
    assert list(opened) == [("127.0.0.1", 8080), ("127.0.0.2", 9101)]
    assert opened[("127.0.0.1", 8080)] is svc.site
    own = opened[("127.0.0.2", 9101)]

    answer, _ = ask(own, get(b"/metrics"))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert PROMETHEUS in answer
    assert b"synapse_base_cs_url_portal_open_connections" in answer
    # Nothing of the portal's own on the metrics listener.
    for path in (b"/health", b"/_matrix/client/versions", b"/metrics/", b"/"):
        assert ask(own, get(path))[0].startswith(b"HTTP/1.1 404 "), path
    refused = ask(own, get(b"/metrics", b"POST"))[0]
    assert refused.startswith(b"HTTP/1.1 405 ")
    assert b"Allow: GET" in refused
    # Its connections are not the public listener's: not counted, not capped.
    assert svc.site.channels == set()
    assert ask(svc.site, get(b"/metrics"))[0].startswith(b"HTTP/1.1 404 ")


def test_drain_stops_both_listeners_without_waiting_for_a_scraper() -> None:
    svc, _ = service(metrics={"port": 9101}, shutdown_grace=5)
    settle(svc.start())
    assert svc.metrics_port is not None
    # A scraper's kept-alive connection, idle between scrapes.
    answer, scraper = ask(listeners_of(svc)[1], get(b"/metrics"))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert not scraper.disconnecting
    d = defer.ensureDeferred(svc.drain())
    assert d.called  # at once: no public request was under way, and nothing waits on it
    assert (svc.port, svc.metrics_port) == (None, None)


def test_a_port_in_use_is_a_startup_error_naming_the_metrics_listener() -> None:
    svc, reactor = service(metrics={"port": 9101})

    def busy(port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        if port == 9101:
            raise OSError("Address already in use")
        return MemoryReactorClock.listenTCP(reactor, port, factory, backlog, interface)

    reactor.listenTCP = busy  # type: ignore[method-assign]
    with pytest.raises(
        StartupError, match=r"^portal cannot listen for metrics on 127\.0\.0\.1:9101"
    ):
        settle(svc.start())


@pytest.fixture
def fds() -> Iterator[list[int]]:
    """Descriptors of listening sockets, as a worker's parent passes them (the process
    takes them over and closes them)."""
    sockets = [socket.socket() for _ in range(2)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
    yield [os.dup(sock.fileno()) for sock in sockets]
    for sock in sockets:
        sock.close()


def test_a_worker_serves_metrics_on_the_socket_its_parent_passed(fds: list[int]) -> None:
    reactor = MemoryReactorClock()
    config = PortalConfig.from_config(raw(metrics={"port": 9101}, workers=2))
    svc = PortalProcess(config, reactor, listen_fd=fds[0], metrics_fd=fds[1])
    settle(svc.start())
    assert reactor.tcpServers == []  # binds nothing itself
    (public_fd, _, public), (metrics_fd, _, own) = reactor.adoptedPorts
    assert (public_fd, metrics_fd) == (fds[0], fds[1])
    assert public is svc.site
    assert ask(own, get(b"/metrics"))[0].startswith(b"HTTP/1.1 200 ")


def test_a_worker_whose_parent_opened_no_metrics_socket_says_so_and_binds_nothing(
    fds: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    os.close(fds[1])
    reactor = MemoryReactorClock()
    config = PortalConfig.from_config(raw(metrics={"port": 9101}, workers=2))
    svc = PortalProcess(config, reactor, listen_fd=fds[0])
    caplog.set_level(logging.INFO, logger="synapse_base_cs_url.portal")
    settle(svc.start())
    assert reactor.tcpServers == []
    assert len(reactor.adoptedPorts) == 1
    assert svc.metrics_port is None
    assert "a change to 'metrics.listener' takes effect at the next restart" in caplog.text


def test_reload_applies_public_at_once_and_a_listener_at_the_next_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    svc, reactor = service(metrics="public")
    settle(svc.start())
    path = tmp_path / "portal.yaml"
    caplog.set_level(logging.INFO, logger="synapse_base_cs_url.portal")

    path.write_text(yaml.safe_dump(raw(metrics={"port": 9101})))
    assert svc.reload(str(path))
    # The public page goes at once (a URL table is rebuilt on reload)...
    assert ask(svc.site, get(b"/metrics"))[0].startswith(b"HTTP/1.1 404 ")
    # ...the new listener waits for a restart, and says so.
    assert "a change to 'metrics.listener' takes effect at the next restart" in caplog.text
    assert len(reactor.tcpServers) == 1

    path.write_text(yaml.safe_dump(raw(metrics="public")))
    assert svc.reload(str(path))
    assert ask(svc.site, get(b"/metrics"))[0].startswith(b"HTTP/1.1 200 ")
