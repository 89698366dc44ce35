"""Requests against the real portal, answered in memory (as sygnal's and sydent's
``make_request`` / ``FakeChannel`` do).

A request is bytes fed to the portal's real :class:`~synapse_base_cs_url.portal.web.site.PortalSite`
over an in-memory transport: the real ``PortalChannel`` tells the ``PortalRequest`` its line,
the request's ``gotLength`` asks ``RequestSettings.stream_bodies`` whether its body streams to
a ``BodySink`` (the gateway's exchange), the ``PortalResource`` dispatches by the real URL
table. What the portal writes back is parsed into a :class:`FakeChannel`.

The homeservers are played by :class:`FakeHomeservers` on the same ``MemoryReactorClock``:
every ``connectTCP`` of the portal's real ``Upstream`` (Twisted's Agent and its pool) is
accepted (or refused, or left connecting) by the test, which reads what the portal sent and
answers it, by hand or with canned answers. Nothing waits on a real clock or socket: time
passes only with :meth:`InMemoryPortal.advance`.

Typical use::

    portal = InMemoryPortal(portal_config(client_api="proxy"))
    portal.hs("hs1").on(b"GET", b"/_matrix/client/versions", json_answer(200, {...}))
    channel = portal.request(b"GET", b"/_matrix/client/versions")
    assert channel.code == 200 and channel.json()["versions"] == [...]
"""

from __future__ import annotations

import copy
import json
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attr
from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.config.serving import Connections
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.process import PortalProcess
from synapse_base_cs_url.portal.sso_tokens import SsoTokenStore
from synapse_base_cs_url.portal.web.request import RequestSettings, request_class
from synapse_base_cs_url.portal.web.site import PortalSite

#: Where a test client connects from unless it says otherwise (TEST-NET-3: not a trusted
#: proxy, and easy to tell apart from the portal's own address in ``X-Forwarded-For``).
CLIENT_IP = "203.0.113.5"
#: A trusted proxy by default (``gateway.trusted_proxies``).
LOCAL_IP = "127.0.0.1"
PUBLIC_BASEURL = "https://portal.example"
#: The homeservers of :func:`portal_config`: public ``base_url`` and, where the portal
#: connects, a ``proxy_url`` whose port tells the fake homeservers apart (the memory
#: reactor resolves every name to 127.0.0.1 and keeps the port).
HOMESERVERS: dict[str, dict[str, str]] = {
    "hs1": {
        "base_url": "https://hs1.example",
        "proxy_url": "http://hs1.internal:8001",
        "server_name": "one.example",
    },
    "hs2": {
        "base_url": "https://hs2.example",
        "proxy_url": "http://hs2.internal:8002",
        "server_name": "two.example",
    },
}


def portal_config(**overrides: Any) -> dict[str, Any]:
    """A raw ``portal.yaml`` with :data:`HOMESERVERS` (default ``hs1``); top-level keys in
    ``overrides`` replace the defaults."""
    raw: dict[str, Any] = {
        "public_baseurl": PUBLIC_BASEURL,
        "homeservers": copy.deepcopy(HOMESERVERS),
        "default_homeserver": "hs1",
    }
    raw.update(overrides)
    return raw


# --- HTTP/1.1 messages, as the test sees them --------------------------------------------


@attr.s(auto_attribs=True, frozen=True, slots=True)
class HttpMessage:
    """One request or response parsed from what a side wrote."""

    start_line: bytes
    headers: Headers
    body: bytes
    complete: bool
    """Whether the whole body is in (otherwise ``body`` is what arrived so far)."""

    # requests
    @property
    def method(self) -> bytes:
        return self.start_line.split(b" ")[0]

    @property
    def target(self) -> bytes:
        """The path and query string."""
        return self.start_line.split(b" ")[1]

    @property
    def path(self) -> bytes:
        return self.target.partition(b"?")[0]

    # responses
    @property
    def code(self) -> int:
        return int(self.start_line.split(b" ")[1])

    def header(self, name: bytes) -> bytes | None:
        """The last value of header ``name`` (``None`` if absent)."""
        values = self.headers.getRawHeaders(name)
        return values[-1] if values else None

    def header_names(self) -> set[bytes]:
        """Every header name, lower case."""
        return {name.lower() for name, _ in self.headers.getAllRawHeaders()}

    def json(self) -> Any:
        return json.loads(self.body)


def _chunked(data: bytes, pos: int) -> tuple[bytes, int, bool]:
    """The chunked body at ``pos``: (body so far, position after it, complete)."""
    parts: list[bytes] = []
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return b"".join(parts), len(data), False
        size = int(data[pos:end].split(b";")[0].strip(), 16)
        pos = end + 2
        if size == 0:
            if data[pos : pos + 2] == b"\r\n":
                return b"".join(parts), pos + 2, True
            trailers = data.find(b"\r\n\r\n", pos)
            if trailers < 0:
                return b"".join(parts), len(data), False
            return b"".join(parts), trailers + 4, True
        if len(data) < pos + size + 2:
            parts.append(data[pos : pos + size])
            return b"".join(parts), len(data), False
        parts.append(data[pos : pos + size])
        pos += size + 2


def parse_messages(
    data: bytes,
    *,
    responses: bool,
    ended: bool = False,
    head_requests: Iterable[bool] = (),
) -> list[HttpMessage]:
    """Every HTTP/1.1 message in ``data``, the last one possibly incomplete. ``responses``:
    parse responses (1xx are skipped; a body without framing lasts until the connection
    ends, which ``ended`` says it did); ``head_requests``: for each response in turn,
    whether it answers a HEAD (no body)."""
    messages: list[HttpMessage] = []
    heads = iter(head_requests)
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break  # the head is not all in
        lines = data[pos:end].split(b"\r\n")
        start, headers = lines[0], Headers()
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.addRawHeader(name.strip(), value.strip())
        pos = end + 4
        code = int(start.split(b" ")[1]) if responses else 0
        if responses and 100 <= code < 200:
            continue
        length = headers.getRawHeaders(b"content-length")
        chunked = b"chunked" in b",".join(headers.getRawHeaders(b"transfer-encoding") or [])
        no_body = responses and (code in (204, 304) or next(heads, False))
        if no_body:
            body, complete = b"", True
        elif chunked:
            body, pos, complete = _chunked(data, pos)
        elif length:
            n = int(length[-1].split(b",")[0])
            body, complete = data[pos : pos + n], len(data) >= pos + n
            pos = min(len(data), pos + n)
        elif responses:
            body, complete, pos = data[pos:], ended, len(data)
        else:
            body, complete = b"", True
        messages.append(HttpMessage(start, headers, body, complete))
    return messages


def answer(
    status: int,
    body: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    reason: bytes = b"Whatever",
) -> bytes:
    """A whole HTTP/1.1 response with a ``Content-Length``."""
    head = b"HTTP/1.1 %d %s\r\n" % (status, reason)
    head += b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def json_answer(status: int, obj: object, headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    return answer(
        status, json.dumps(obj).encode(), [(b"Content-Type", b"application/json"), *headers]
    )


# --- transports --------------------------------------------------------------------------


class MemoryTransport(StringTransport):
    """A StringTransport that, like TCP, tells its protocol the connection is lost (on the
    next reactor turn) once it is closed or aborted, and says which it was."""

    aborted = False
    lost = False

    def __init__(self, reactor: MemoryReactorClock, peer: IPv4Address | None = None) -> None:
        super().__init__(peerAddress=peer, lenient=True)  # type: ignore[no-untyped-call]
        self._reactor = reactor
        self.protocol: Any = None

    def loseConnection(self) -> None:
        if not self.disconnecting:
            super().loseConnection()  # type: ignore[no-untyped-call]
            self._reactor.callLater(0, self.lose, error.ConnectionDone())

    def abortConnection(self) -> None:
        self.aborted = True
        self.disconnected = True
        if not self.disconnecting:
            super().loseConnection()  # type: ignore[no-untyped-call]
            self._reactor.callLater(0, self.lose, error.ConnectionAborted())

    def stopProducing(self) -> None:
        # As a TCP transport (FileDescriptor.stopProducing): stopped for good means closed.
        super().stopProducing()  # type: ignore[no-untyped-call]
        self.loseConnection()

    def lose(self, reason: Exception) -> None:
        """The connection is gone (either side closed it): tell the protocol, once."""
        if self.lost:
            return
        self.lost = True
        self.disconnecting = True
        if self.protocol is not None:
            self.protocol.connectionLost(Failure(reason))  # type: ignore[no-untyped-call]


# --- the client side ---------------------------------------------------------------------


class FakeChannel:
    """One client connection to a portal site, and what the portal answered on it.

    ``code``, ``headers``, ``body`` and :meth:`json` are those of the newest answer; each is
    an ``AssertionError`` while no answer has started."""

    def __init__(
        self,
        site: PortalSite,
        reactor: MemoryReactorClock,
        *,
        client_ip: str = CLIENT_IP,
        client_port: int = 40000,
        pump: Callable[[], None] | None = None,
    ) -> None:
        """``pump``: runs whatever the client's bytes set off (the homeservers' answers);
        by default only what is due now on ``reactor``."""
        self.site = site
        self.reactor = reactor
        self._pump = pump or (lambda: reactor.advance(0))
        peer = IPv4Address("TCP", client_ip, client_port)
        self.transport = MemoryTransport(reactor, peer)
        self.protocol: Any = site.buildProtocol(peer)
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        self._heads: list[bool] = []
        self.left = False

    # -- sending --------------------------------------------------------------------------

    def send(self, data: bytes) -> FakeChannel:
        """Raw bytes from the client; then everything that follows from them runs."""
        if data:
            self.protocol.dataReceived(data)
        self._pump()
        return self

    def send_head(
        self,
        method: bytes,
        path: bytes,
        *,
        headers: Iterable[tuple[bytes, bytes]] = (),
        length: int | None = None,
        chunked: bool = False,
        access_token: str | None = None,
    ) -> FakeChannel:
        """The request line and headers (``length``: a ``Content-Length``; ``chunked``: a
        chunked body follows, in :meth:`send_chunk`)."""
        self._heads.append(method == b"HEAD")
        head = b"%s %s HTTP/1.1\r\nHost: portal.example\r\n" % (method, path)
        if access_token is not None:
            head += b"Authorization: Bearer %s\r\n" % access_token.encode()
        head += b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)
        if chunked:
            head += b"Transfer-Encoding: chunked\r\n"
        elif length is not None:
            head += b"Content-Length: %d\r\n" % length
        return self.send(head + b"\r\n")

    def send_body(self, part: bytes) -> FakeChannel:
        """Part of a body announced by ``Content-Length``."""
        return self.send(part)

    def send_chunk(self, part: bytes) -> FakeChannel:
        """One chunk of a chunked body (``b""``: the last)."""
        return self.send(b"%x\r\n%s\r\n" % (len(part), part))

    def leave(self) -> FakeChannel:
        """The client closes its connection (whatever is under way)."""
        self.left = True
        self.transport.lose(error.ConnectionDone())
        self._pump()
        return self

    # -- what the portal did --------------------------------------------------------------

    @property
    def written(self) -> bytes:
        """Every byte the portal wrote on this connection."""
        data: bytes = self.transport.value()  # type: ignore[no-untyped-call]
        return data

    @property
    def responses(self) -> list[HttpMessage]:
        return parse_messages(
            self.written, responses=True, ended=self.transport.lost, head_requests=self._heads
        )

    @property
    def response(self) -> HttpMessage:
        found = self.responses
        assert found, f"no answer yet; the portal wrote {self.written!r}"
        return found[-1]

    @property
    def answered(self) -> bool:
        """Whether a whole answer has been written."""
        found = self.responses
        return bool(found) and found[-1].complete

    @property
    def code(self) -> int:
        return self.response.code

    @property
    def headers(self) -> Headers:
        return self.response.headers

    @property
    def body(self) -> bytes:
        return self.response.body

    def header(self, name: bytes) -> bytes | None:
        return self.response.header(name)

    def json(self) -> Any:
        return self.response.json()

    @property
    def closed(self) -> bool:
        """The portal closed (or cut) the connection."""
        return bool(self.transport.disconnecting) and not self.left

    @property
    def aborted(self) -> bool:
        """The portal cut the connection (an answer broken off, a missed deadline)."""
        return self.transport.aborted

    @property
    def reading_paused(self) -> bool:
        """The portal stopped reading from this client (backpressure)."""
        return self.transport.producerState == "paused"


def make_request(
    site_or_resource: PortalSite | Resource,
    method: bytes,
    path: bytes,
    body: bytes | None = None,
    *,
    headers: Iterable[tuple[bytes, bytes]] = (),
    client_ip: str = CLIENT_IP,
    access_token: str | None = None,
    homeservers: FakeHomeservers | None = None,
    reactor: MemoryReactorClock | None = None,
) -> FakeChannel:
    """A whole request on a new connection, and the answer as far as it got.

    ``site_or_resource``: a portal site (``PortalProcess(...).site``), or a bare resource,
    which gets a site of its own. ``body``: sent with a ``Content-Length`` (``None``, the
    default: no body and no length). ``homeservers``: answer the portal's upstream requests as they
    come. ``reactor``: the site's reactor (found on the site when not given)."""
    if isinstance(site_or_resource, PortalSite):
        site = site_or_resource
        reactor = reactor or site.reactor
    else:
        reactor = reactor or MemoryReactorClock()  # type: ignore[no-untyped-call]
        site = PortalSite(site_or_resource, Connections(), PortalMetrics(), reactor)
        site.requestFactory = request_class(RequestSettings())
    assert isinstance(reactor, MemoryReactorClock), "an in-memory request needs a memory reactor"
    pump = homeservers.pump if homeservers is not None else None
    channel = FakeChannel(site, reactor, client_ip=client_ip, pump=pump)
    channel.send_head(
        method,
        path,
        headers=headers,
        length=None if body is None else len(body),
        access_token=access_token,
    )
    if body:
        channel.send_body(body)
    return channel


# --- the homeserver side -----------------------------------------------------------------

Handler = Callable[[HttpMessage], "bytes | None"]
"""Answers one complete request a homeserver received (raw HTTP bytes), or ``None``: leave it
unanswered (the test answers it by hand, or never)."""


class HomeserverConnection:
    """One connection the portal made to a homeserver, accepted by the test."""

    def __init__(self, protocol: Any, transport: MemoryTransport) -> None:
        self.protocol = protocol
        self.transport = transport
        self.answered = 0
        """Requests on this connection answered so far."""

    @property
    def received(self) -> bytes:
        """Every byte the portal sent on this connection."""
        data: bytes = self.transport.value()  # type: ignore[no-untyped-call]
        return data

    @property
    def requests(self) -> list[HttpMessage]:
        return parse_messages(self.received, responses=False)

    def answer(self, data: bytes) -> None:
        """Bytes from the homeserver (an answer, or part of one)."""
        self.protocol.dataReceived(data)

    def stop_reading(self) -> None:
        """The homeserver reads no more for now (its connection is full): the portal's
        request body producer is paused, as a TCP transport pauses it."""
        assert self.transport.producer is not None, "the portal is not sending a body"
        self.transport.producer.pauseProducing()

    def read_again(self) -> None:
        assert self.transport.producer is not None, "the portal is not sending a body"
        self.transport.producer.resumeProducing()

    def close(self, reason: Exception | None = None) -> None:
        """The homeserver closes the connection."""
        self.transport.lose(reason or error.ConnectionDone())

    @property
    def released(self) -> bool:
        """The portal closed (or cut) this connection."""
        return bool(self.transport.disconnecting)


class FakeHomeserver:
    """One homeserver behind the portal, played by the test."""

    def __init__(self, homeserver: Homeserver) -> None:
        self.homeserver = homeserver
        self.name = homeserver.name
        self.port = _port_of(homeserver.proxy_url)
        self.connections: list[HomeserverConnection] = []
        self.attempts: list[Any] = []
        """Every connection attempt's connector (``stoppedConnecting`` once given up)."""
        self.accepting = True
        """Accept connections (``False``: they stay connecting until the test decides)."""
        self.refusing = False
        """Refuse connections (``ConnectionRefusedError``)."""
        self.canned: dict[tuple[bytes, bytes], bytes] = {}
        self.handler: Handler | None = None
        """Answers what :attr:`canned` does not (``None``: nothing else is answered)."""
        self.pending: list[tuple[Any, Any]] = []
        """Connection attempts not accepted yet: (factory, connector)."""

    def on(self, method: bytes, path: bytes, response: bytes) -> FakeHomeserver:
        """Answer every ``method`` ``path`` (without its query) with ``response``."""
        self.canned[(method, path)] = response
        return self

    def _answer_for(self, request: HttpMessage) -> bytes | None:
        canned = self.canned.get((request.method, request.path))
        if canned is not None:
            return canned
        return self.handler(request) if self.handler is not None else None

    @property
    def requests(self) -> list[HttpMessage]:
        """Every request the portal sent here (the newest may be incomplete), in order."""
        return [r for c in self.connections for r in c.requests]

    def paths(self) -> list[bytes]:
        return [r.path for r in self.requests]

    @property
    def connection(self) -> HomeserverConnection:
        """The newest connection."""
        assert self.connections, f"{self.name}: the portal made no connection here"
        return self.connections[-1]


def _port_of(url: str) -> int:
    parsed = urllib.parse.urlsplit(url)
    assert parsed.scheme == "http", f"{url}: the fake homeservers speak plain HTTP"
    return parsed.port or 80


class FakeHomeservers:
    """The homeservers of a config, on the portal's memory reactor."""

    def __init__(self, reactor: MemoryReactorClock, homeservers: Iterable[Homeserver]) -> None:
        self.reactor = reactor
        self.by_name: dict[str, FakeHomeserver] = {}
        self._by_port: dict[int, FakeHomeserver] = {}
        for hs in homeservers:
            fake = FakeHomeserver(hs)
            assert fake.port not in self._by_port, f"{hs.name}: two homeservers on one port"
            self.by_name[hs.name] = fake
            self._by_port[fake.port] = fake
        self._seen = 0

    def __getitem__(self, name: str) -> FakeHomeserver:
        return self.by_name[name]

    def __iter__(self) -> Any:
        return iter(self.by_name.values())

    def pump(self) -> None:
        """Run what is due now, then, until nothing changes: take new connection attempts
        (accept, refuse or leave them connecting), answer what the handlers answer."""
        for _ in range(1000):
            self.reactor.advance(0)
            if not self._step():
                return
        raise AssertionError("the portal and its homeservers never settle")

    def _step(self) -> bool:
        changed = False
        clients = self.reactor.tcpClients
        while self._seen < len(clients):
            _, port, factory, _, _ = clients[self._seen]
            connector = self.reactor.connectors[self._seen]
            self._seen += 1
            hs = self._by_port.get(port)
            assert hs is not None, f"the portal connected to port {port}: no homeserver there"
            hs.attempts.append(connector)
            hs.pending.append((factory, connector))
        for hs in self:
            for factory, connector in list(hs.pending):
                if connector.stoppedConnecting:
                    hs.pending.remove((factory, connector))
                elif hs.refusing:
                    hs.pending.remove((factory, connector))
                    factory.clientConnectionFailed(
                        connector,
                        Failure(error.ConnectionRefusedError()),  # type: ignore[no-untyped-call]
                    )
                    changed = True
                elif hs.accepting:
                    hs.pending.remove((factory, connector))
                    self._accept(hs, factory)
                    changed = True
            for connection in hs.connections:
                if connection.transport.disconnecting:
                    continue
                done = [r for r in connection.requests if r.complete]
                while connection.answered < len(done):
                    response = hs._answer_for(done[connection.answered])
                    if response is None:
                        break
                    connection.answered += 1
                    connection.answer(response)
                    changed = True
        return changed

    def _accept(self, hs: FakeHomeserver, factory: Any) -> HomeserverConnection:
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", hs.port))
        transport = MemoryTransport(self.reactor, IPv4Address("TCP", "127.0.0.1", hs.port))
        transport.protocol = protocol
        connection = HomeserverConnection(protocol, transport)
        hs.connections.append(connection)
        protocol.makeConnection(transport)
        return connection

    def accept_pending(self, name: str) -> HomeserverConnection:
        """Accept the oldest connection attempt left connecting to ``name``."""
        hs = self[name]
        assert hs.pending, f"{name}: no connection attempt waits"
        factory, _ = hs.pending.pop(0)
        connection = self._accept(hs, factory)
        self.pump()
        return connection


# --- a whole portal ----------------------------------------------------------------------


class InMemoryPortal:
    """One ``PortalProcess`` (the real wiring: ``Lasting.build``, ``build_portal``, its site)
    on a ``MemoryReactorClock``, its homeservers played by :class:`FakeHomeservers`."""

    def __init__(self, raw: Mapping[str, Any], *, sso_tokens: SsoTokenStore | None = None) -> None:
        self.reactor = MemoryReactorClock()  # type: ignore[no-untyped-call]
        self.config = PortalConfig.from_config(raw)
        self.process = PortalProcess(self.config, self.reactor, sso_tokens=sso_tokens)
        self.homeservers = FakeHomeservers(self.reactor, self.config.homeservers.values())

    @property
    def site(self) -> PortalSite:
        return self.process.site

    @property
    def metrics(self) -> PortalMetrics:
        return self.process.metrics

    def hs(self, name: str) -> FakeHomeserver:
        return self.homeservers[name]

    def connect(self, client_ip: str = CLIENT_IP) -> FakeChannel:
        """A new client connection, to send a request on in parts."""
        return FakeChannel(self.site, self.reactor, client_ip=client_ip, pump=self.homeservers.pump)

    def request(
        self,
        method: bytes,
        path: bytes,
        body: bytes | None = None,
        **kwargs: Any,
    ) -> FakeChannel:
        """A whole request on a new connection (see :func:`make_request`)."""
        return make_request(self.site, method, path, body, homeservers=self.homeservers, **kwargs)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on the portal's clock, then let everything due run."""
        self.reactor.advance(seconds)
        self.homeservers.pump()

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the portal's registry (0 if it has none yet)."""
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value
