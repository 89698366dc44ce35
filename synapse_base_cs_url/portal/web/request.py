"""The portal's request class: how a request's body is received, and the typed helpers every
handler answers with (CORS, JSON, errors, the client's address).

Twisted's ``Request`` is not annotated, so strict type checking would see every call on it as
untyped. :class:`PortalRequest` is the one place that talks to Twisted's request directly;
the handlers use only its typed methods.
"""

from __future__ import annotations

import io
import ipaddress
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Protocol, cast

import attr
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http_headers import Headers

from synapse_base_cs_url.core.matchers import IPNetwork
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.errors import MatrixError
from synapse_base_cs_url.portal.web.body_sink import BodySink

JSON = b"application/json"

StreamBodies = Callable[["PortalRequest", bytes, bytes, "int | None"], "BodySink | None"]
"""``(request, method, target, length)``, called once a request's headers are in and a body
follows: the sink its body goes to as it arrives, or ``None`` to keep it in memory."""


@attr.s(auto_attribs=True, frozen=True, slots=True)
class RequestSettings:
    """What every request of a site needs to know, passed through the site's
    ``requestFactory`` (:func:`request_class`): replaced as a whole on reload."""

    max_body_size: int = 64 * 1024
    """Bytes of a body kept in memory; past it the request is ``too_large``."""
    stream_bodies: StreamBodies | None = None
    """Decides which bodies go to a :class:`BodySink` instead (the gateway's uploads)."""
    x_forwarded: bool = False
    """The listener sits behind a reverse proxy it trusts: a request's client address and
    scheme come from ``X-Forwarded-For`` / ``-Proto`` (``listen.x_forwarded``)."""


class _SiteState(Protocol):
    """What a request reads of its site (``PortalSite``, which imports this module)."""

    draining: bool


#: Exactly what Synapse's ``synapse.http.server.set_cors_headers`` sends for client API paths,
#: so browser clients see the same policy from the portal as from the homeserver.
CORS_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"Access-Control-Allow-Origin", b"*"),
    (b"Access-Control-Allow-Methods", b"GET, HEAD, POST, PUT, DELETE, OPTIONS"),
    (b"Access-Control-Allow-Headers", b"X-Requested-With, Content-Type, Authorization, Date"),
    (b"Access-Control-Expose-Headers", b"Synapse-Trace-Id, Server"),
)


class PortalRequest(server.Request):
    """A request that keeps its body in memory, stops keeping it past ``max_body_size``
    bytes, and knows whether its client has gone."""

    settings: ClassVar[RequestSettings] = RequestSettings()
    too_large = False
    """The body was longer than ``settings.max_body_size`` (only the first part is kept)."""
    client_gone = False
    """The client closed the connection before the answer was written."""
    body_sink: BodySink | None = None
    """Where the body goes as it arrives, when :attr:`RequestSettings.stream_bodies` chose
    one (the body is then not kept here)."""
    _line: tuple[bytes, bytes] | None = None
    _received = 0
    _client: tuple[str, str] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        base: Any = super()
        base.__init__(*args, **kwargs)
        # Login bodies are JSON: skip Twisted's check for HTML form bodies on every POST (it
        # parses Content-Type with the email package, a noticeable share of a redirect's
        # cost). Twisted's own attribute, set as its constructor sets it.
        self._parsePOSTFormSubmission = False

    # -- receiving (called by Twisted's HTTP channel) -------------------------------------------

    def line_received(self, method: bytes, target: bytes) -> None:
        """Called by the channel as soon as the request line is in (Twisted tells the
        request its method and path only once the whole body has arrived)."""
        self._line = (method, target)

    def gotLength(self, length: int | None) -> None:
        stream_bodies = self.settings.stream_bodies
        if stream_bodies is not None and self._line is not None and length != 0:
            self.body_sink = stream_bodies(self, *self._line, length)
            if self.body_sink is not None:
                self.content = io.BytesIO()
                return
        if length is not None and length > self.settings.max_body_size:
            self.too_large = True
        # Always in memory (at most max_body_size is kept): Twisted would spool a body
        # without Content-Length, or of 100 kB or more, to a temporary file, i.e. write
        # the password to disk.
        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_sink is not None:
            self.body_sink.feed(data)
            return
        self._received += len(data)
        if self._received > self.settings.max_body_size:
            self.too_large = True
        if not self.too_large:
            base: Any = super()
            base.handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.body_sink is not None:
            self.body_sink.finish()
        base: Any = super()
        base.requestReceived(command, path, version)

    def connectionLost(self, reason: Failure) -> None:
        self.client_gone = True
        if self.body_sink is not None:
            # Gone in the middle of its upload: the homeserver need not wait for the rest.
            self.body_sink.abandon()
        base: Any = super()
        base.connectionLost(reason)

    # -- reading -----------------------------------------------------------------------------

    @property
    def method_bytes(self) -> bytes:
        method: bytes = self.method
        return method

    @property
    def path_bytes(self) -> bytes:
        """The path, without the query string."""
        path: bytes = self.path
        return path

    @property
    def uri_bytes(self) -> bytes:
        """The path and query string, as the client sent them."""
        uri: bytes = self.uri
        return uri

    @property
    def query_bytes(self) -> bytes:
        return self.uri_bytes.partition(b"?")[2]

    def body(self) -> bytes:
        """The body received; ``413`` (``M_TOO_LARGE``) if it was longer than
        ``settings.max_body_size``, so no handler can read a body cut short."""
        if self.too_large:
            raise errors.too_large(self.settings.max_body_size)
        content: Any = self.content
        if content is None:
            return b""
        content.seek(0)
        data: bytes = content.read()
        return data

    @property
    def headers(self) -> Headers:
        """The request's headers (to pass on upstream)."""
        headers: Headers = self.requestHeaders
        return headers

    def header(self, name: bytes) -> bytes | None:
        """The last value of request header ``name``."""
        value: bytes | None = self.getHeader(name)
        return value

    @property
    def client_ip(self) -> str:
        """The client's IP address, as this request's listener knows it (its TCP peer, or
        its trusted proxy's ``X-Forwarded-For``)."""
        return self._client_address()[0]

    @property
    def scheme(self) -> str:
        """``http`` or ``https``, as the client used it (see :attr:`client_ip`)."""
        return self._client_address()[1]

    def _client_address(self) -> tuple[str, str]:
        found = self._client
        if found is None:
            found = self._client = client_address(self, x_forwarded=self.settings.x_forwarded)
        return found

    def client_host(self) -> str | None:
        """The IP address of the TCP peer."""
        peer: Any = self.getClientAddress()  # type: ignore[no-untyped-call]
        host = getattr(peer, "host", None)
        return host if isinstance(host, str) else None

    def is_secure(self) -> bool:
        secure: bool = self.isSecure()  # type: ignore[no-untyped-call]
        return secure

    def when_finished(self) -> defer.Deferred[None]:
        """Fires when the answer has been sent; fails if the client left first."""
        return self.notifyFinish()

    # -- answering ---------------------------------------------------------------------------

    def set_header(self, name: bytes, value: bytes) -> None:
        self.setHeader(name, value)  # type: ignore[no-untyped-call]

    def add_header(self, name: bytes, value: bytes) -> None:
        """One more value of answer header ``name`` (``Set-Cookie``: one cookie each)."""
        self.responseHeaders.addRawHeader(name, value)

    def set_status(self, status: int) -> None:
        """The status of an answer written in parts (:meth:`write_part`, :meth:`end`)."""
        self.setResponseCode(status)

    def add_headers(self, headers: Iterable[tuple[bytes, list[bytes]]]) -> None:
        """Answer headers (each name with all its values), e.g. relayed from a homeserver."""
        for name, values in headers:
            self.responseHeaders.setRawHeaders(name, values)

    def set_cors_headers(self) -> None:
        for name, value in CORS_HEADERS:
            self.set_header(name, value)

    def respond(self, status: int, body: bytes, content_type: bytes | None = JSON) -> None:
        """Write a complete answer, unless the client has already gone away."""
        if self.client_gone or self.finished:
            return
        self.setResponseCode(status)
        site = cast("_SiteState | None", self.site)
        if site is not None and site.draining:
            # The portal is shutting down: this connection ends with this answer.
            self.set_header(b"Connection", b"close")
        if content_type is not None:
            self.set_header(b"Content-Type", content_type)
        self.set_header(b"Content-Length", str(len(body)).encode())
        if self.method_bytes != b"HEAD":
            self.write(body)  # type: ignore[no-untyped-call]
        self.finish()  # type: ignore[no-untyped-call]

    # -- answers streamed by the gateway --------------------------------------------------

    def stream_from(self, producer: object) -> None:
        """Write a streamed answer as ``producer`` (a push producer) makes it: it is paused
        while the client reads slower than it sends."""
        self.registerProducer(producer, True)  # type: ignore[no-untyped-call]

    def stream_done(self) -> None:
        """The streamed answer's producer is finished with."""
        if self.producer is None:
            return
        if self.channel is not None:
            self.unregisterProducer()  # type: ignore[no-untyped-call]
        else:  # the client is gone, and with it the channel to unregister from
            self.producer = None

    def client_transport(self) -> Any:
        """The client connection, to pause and resume reading from it (an upload's
        backpressure); ``None`` once it is gone. Twisted's transports are zope interfaces,
        which the type checker cannot see through."""
        channel: Any = self.channel
        return None if channel is None else channel.transport

    def abort_connection(self) -> None:
        """Cut the client's connection: an answer broke off half-way, and the client must
        not take what it got for the whole of it."""
        transport = self.client_transport()
        if transport is not None:
            transport.abortConnection()

    def write_part(self, data: bytes) -> None:
        """Part of an answer (nothing once the client has gone or the answer has ended)."""
        if not self.finished and not self.client_gone:
            self.write(data)  # type: ignore[no-untyped-call]

    def end(self) -> None:
        """End an answer written in parts."""
        if not self.finished and not self.client_gone:
            self.finish()  # type: ignore[no-untyped-call]

    def respond_error(self, error: MatrixError) -> None:
        if error.retry_after is not None:
            self.set_header(b"Retry-After", str(max(1, round(error.retry_after))).encode())
        self.respond(error.status, error.body())

    def describe(self) -> str:
        """Method and path for a log line: never the query string, which may carry a token."""
        return (
            f"{self.method_bytes.decode('ascii', 'replace')} "
            f"{self.path_bytes.decode('utf-8', 'replace')}"
        )


def request_class(settings: RequestSettings) -> type[PortalRequest]:
    """A request class for a site's ``requestFactory``, whose requests see ``settings``."""
    return type("PortalRequest", (PortalRequest,), {"settings": settings})


def access_token(authorization: bytes | None, query: bytes) -> str | None:
    """The request's access token: ``Authorization: Bearer``, else the ``access_token``
    query parameter that older clients send."""
    if authorization:
        scheme, _, value = authorization.partition(b" ")
        if scheme.lower() == b"bearer" and value.strip():
            return value.strip().decode("ascii", "replace")
    if b"access_token=" in query:
        values = urllib.parse.parse_qs(query.decode("ascii", "replace")).get("access_token")
        if values and values[0]:
            return values[0]
    return None


def forwarded_client(request: PortalRequest, trusted: Sequence[IPNetwork]) -> str:
    """The client a chain of ``trusted`` proxies forwarded this request for: the TCP peer
    if it is not one of them; else ``X-Forwarded-For`` read from the right (each proxy
    appends the address it received from), the first address that is not a trusted proxy.
    Whatever a client wrote into the header itself stands to the left of that, and is never
    taken (a client cannot pick the address it is limited under)."""
    peer = request.client_host() or "unknown"
    if not _in_any(peer, trusted):
        return peer
    forwarded = request.headers.getRawHeaders(b"x-forwarded-for") or []
    hops = [
        hop.strip().decode("ascii", "replace")
        for value in forwarded
        for hop in value.split(b",")
        if hop.strip()
    ]
    client = peer
    for hop in reversed(hops):
        client = hop
        if not _in_any(hop, trusted):
            break
    return client


def _in_any(address: str, networks: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request: PortalRequest, *, x_forwarded: bool) -> tuple[str, str]:
    """The client's IP and scheme (``http``/``https``).

    With ``x_forwarded`` (the portal sits behind a reverse proxy it trusts) they come from
    the proxy's ``X-Forwarded-For`` (first address) and ``X-Forwarded-Proto``, as Synapse
    reads them on an ``x_forwarded`` listener; otherwise from the TCP connection itself.
    """
    ip = request.client_host() or "unknown"
    scheme = "https" if request.is_secure() else "http"
    if x_forwarded:
        forwarded_for = request.header(b"x-forwarded-for")
        if forwarded_for:
            first = forwarded_for.split(b",")[0].strip()
            if first:
                ip = first.decode("ascii", "replace")
        proto = request.header(b"x-forwarded-proto")
        if proto:
            scheme = proto.split(b",")[0].strip().decode("ascii", "replace").lower() or scheme
    return ip, scheme
