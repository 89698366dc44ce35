"""The portal's web site over a real Twisted HTTP channel (in-memory transport): how request
bodies are received, and clients that leave early."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from twisted.internet import defer, error
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import Resource

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.process import PortalProcess
from synapse_base_cs_url.portal.web.request import RequestSettings, request_class

LIMIT = 200_000


class Capture(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.seen: list[tuple[Any, bytes, bool]] = []

    def render(self, request: Any) -> bytes:
        self.seen.append((request.content, request.content.read(), request.too_large))
        return b""


def send(data: bytes) -> tuple[Any, bytes, bool]:
    resource = Capture()
    site = server.Site(resource)  # type: ignore[no-untyped-call]
    site.requestFactory = request_class(RequestSettings(max_body_size=LIMIT))
    channel: Any = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    channel.makeConnection(StringTransport())
    channel.dataReceived(data)
    assert len(resource.seen) == 1
    return resource.seen[0]


def chunked(body: bytes) -> bytes:
    return (
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: portal\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    )


def with_length(body: bytes) -> bytes:
    return (
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: portal\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def test_bodies_stay_in_memory_never_in_a_temporary_file() -> None:
    """Twisted spools bodies without Content-Length, or of 100 kB or more, to a temporary
    file: a password would be written to disk."""
    small = b'{"password": "hunter2"}'
    large = b"x" * 150_000
    for data, body in ((chunked(small), small), (with_length(large), large)):
        content, received, too_large = send(data)
        assert isinstance(content, io.BytesIO)
        assert (received, too_large) == (body, False)


def test_bodies_over_the_limit_are_flagged_and_not_kept() -> None:
    for data in (chunked(b"x" * (LIMIT + 1)), with_length(b"x" * (LIMIT + 1))):
        content, received, too_large = send(data)
        assert isinstance(content, io.BytesIO)
        assert too_large
        assert len(received) <= LIMIT
    content, received, too_large = send(with_length(b"x" * LIMIT))  # exactly the limit
    assert (len(received), too_large) == (LIMIT, False)


# --- a client that leaves while the portal is still deciding --------------------------------


class SlowTokenStore:
    """An SsoTokenStore that answers ``take`` only when the test says (as a shared store
    over the network would)."""

    def __init__(self) -> None:
        self.pending: list[defer.Deferred[str | None]] = []

    async def remember(self, token: str, homeserver: str) -> bool:
        return True

    async def take(self, token: str) -> str | None:
        d: defer.Deferred[str | None] = defer.Deferred()
        self.pending.append(d)
        return await d


@pytest.mark.parametrize("mode", ["proxy", "redirect"])
def test_client_gone_before_the_token_store_answers(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = PortalConfig.from_config(
        {
            "public_baseurl": "https://portal.example",
            "mode": mode,
            "homeservers": {"hs1": {"base_url": "https://hs1.example"}},
            "default_homeserver": "hs1",
        }
    )
    store, reactor = SlowTokenStore(), MemoryReactorClock()
    site = PortalProcess(config, reactor, sso_tokens=store).site
    channel: Any = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    channel.makeConnection(StringTransport())
    caplog.set_level(logging.INFO, logger="synapse_base_cs_url.portal")
    channel.dataReceived(with_length(b'{"type": "m.login.token", "token": "syl_T"}'))
    assert len(store.pending) == 1
    channel.connectionLost(Failure(error.ConnectionDone()))
    store.pending[0].callback("hs1")
    assert reactor.tcpClients == []  # nothing was sent to the homeserver
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert f"homeserver=hs1 mode={mode} status=499" in caplog.text
