"""A small HTTP/1.1 client for talking to homeservers: keep-alive, one request at a time per
connection, ``Content-Length`` / chunked / until-close bodies.

The portal's upstream requests are all alike (small JSON, a handful of homeservers), and
``twisted.web.client.Agent`` spends several hundred microseconds of Python per request on
generality the portal does not need (URI parsing and IDNA per request, endpoint objects,
body-producer state machines). This client writes one buffer per request and parses the
answer in one pass, which keeps proxy mode's added latency low.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import attr
from twisted.internet import defer, error
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

MAX_HEAD = 64 * 1024
MAX_BODY = 4 * 1024 * 1024
_STATUS_CODE = re.compile(rb"[1-5][0-9][0-9]")
_DIGITS = re.compile(rb"[0-9]{1,19}")
_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]{1,16}")


@attr.s(auto_attribs=True, frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers: Headers
    body: bytes


class UpstreamClosed(Exception):
    """The connection ended before a complete answer; ``got_bytes`` if some had arrived."""

    def __init__(self, message: str, *, got_bytes: bool) -> None:
        super().__init__(message)
        self.got_bytes = got_bytes


class UpstreamProtocolError(Exception):
    """The answer was not valid HTTP/1.1 (or too large).

    The message never quotes what the homeserver sent: it is logged and goes into the
    client's 502, and bytes out of place may be part of an answer body (an access token,
    possibly another client's if the framing went wrong).
    """


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Origin:
    """Scheme, host and port of a homeserver URL, plus the path prefix requests go under."""

    scheme: str
    host: str
    port: int
    prefix: bytes

    @property
    def host_header(self) -> bytes:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return (host if self.port == default else f"{host}:{self.port}").encode("idna")

    @classmethod
    def from_url(cls, url: str) -> Origin:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        return cls(scheme, host, port, parts.path.rstrip("/").encode())


def serialize_request(
    origin: Origin,
    method: bytes,
    target: bytes,
    headers: Iterable[tuple[bytes, list[bytes]]],
    body: bytes | None,
) -> bytes:
    lines = [method + b" " + origin.prefix + target + b" HTTP/1.1", b"Host: " + origin.host_header]
    for name, values in headers:
        for value in values:
            if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
                continue  # never let a header value inject lines
            lines.append(name + b": " + value)
    if body is not None:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


class ClientProtocol(Protocol):
    """One connection; :meth:`request` may be called again once the previous answer is in."""

    def __init__(self) -> None:
        self.lost = False
        self.reusable = False
        self._pending: defer.Deferred[UpstreamResponse] | None = None
        self._reset()

    def _reset(self) -> None:
        self._buffer = bytearray()
        self._got_bytes = False
        self._head_method = False
        self._status = 0
        self._headers: Headers | None = None
        self._framing = ""
        self._length = 0
        self._chunks: list[bytes] = []
        self._chunked_size = 0

    # -- called by the pool ---------------------------------------------------------------

    def request(self, data: bytes, *, head: bool = False) -> defer.Deferred[UpstreamResponse]:
        assert self._pending is None, "one request at a time"
        self._reset()
        self._head_method = head
        self.reusable = False
        d: defer.Deferred[UpstreamResponse] = defer.Deferred(self._cancel)
        self._pending = d
        transport: Any = self.transport
        transport.write(data)
        return d

    def _cancel(self, d: defer.Deferred[UpstreamResponse]) -> None:
        # Deferred then fails with CancelledError itself.
        self._pending = None
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    # -- Protocol ---------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._pending is None:
            # Nothing asked for: a broken or hostile peer; this connection is done.
            self.reusable = False
            transport: Any = self.transport
            transport.loseConnection()
            return
        self._got_bytes = True
        self._buffer += data
        try:
            self._parse()
        except UpstreamProtocolError as e:
            self._fail(e)
            transport = self.transport
            transport.abortConnection()

    def connectionLost(self, reason: Failure = error.ConnectionDone) -> None:  # type: ignore[assignment]
        self.lost = True
        self.reusable = False
        if self._pending is None:
            return
        if self._headers is not None and self._framing == "close":
            self._finish(bytes(self._buffer))
            return
        where = "in the middle of the answer" if self._got_bytes else "before answering"
        self._fail(UpstreamClosed(f"connection closed {where}", got_bytes=self._got_bytes))

    # -- parsing ----------------------------------------------------------------------------

    def _parse(self) -> None:
        while self._headers is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise UpstreamProtocolError("response headers too large")
                return
            head = bytes(self._buffer[:end])
            del self._buffer[: end + 4]
            self._parse_head(head)
        if self._framing == "length":
            if len(self._buffer) >= self._length:
                if len(self._buffer) > self._length:
                    # More than the answer: whatever it is, it must not be read as the
                    # start of the next answer on this connection.
                    self.reusable = False
                self._finish(bytes(self._buffer[: self._length]))
        elif self._framing == "chunked":
            self._parse_chunks()
        elif len(self._buffer) > MAX_BODY:
            raise UpstreamProtocolError("response body too large")

    def _parse_head(self, head: bytes) -> None:
        status_line, _, rest = head.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if (
            len(parts) < 2
            or not parts[0].startswith(b"HTTP/1.")
            or not _STATUS_CODE.fullmatch(parts[1])
        ):
            raise UpstreamProtocolError("bad status line")
        status = int(parts[1])
        headers = Headers()
        for line in rest.split(b"\r\n") if rest else ():
            name, sep, value = line.partition(b":")
            if not sep or not name.strip():
                raise UpstreamProtocolError("bad header line")
            try:
                headers.addRawHeader(name.strip(), value.strip())
            except ValueError:  # Twisted's InvalidHeaderName: not an RFC 9110 token
                raise UpstreamProtocolError("bad header name") from None
        if 100 <= status < 200:
            return  # interim answer (e.g. 100 Continue): the real one follows
        self._status, self._headers = status, headers
        connection = b",".join(headers.getRawHeaders(b"connection") or ()).lower()
        self.reusable = parts[0] == b"HTTP/1.1" and b"close" not in connection
        encoding = b",".join(headers.getRawHeaders(b"transfer-encoding") or ()).lower()
        length = headers.getRawHeaders(b"content-length")
        if self._head_method or status in (204, 304):
            self._framing, self._length = "length", 0
        elif b"chunked" in encoding:
            self._framing = "chunked"
        elif length:
            values = {v.strip() for v in b",".join(length).split(b",")}
            text = values.pop()
            if values or not _DIGITS.fullmatch(text):
                raise UpstreamProtocolError("bad Content-Length")
            self._length = int(text)
            if self._length > MAX_BODY:
                raise UpstreamProtocolError(f"Content-Length {self._length} out of range")
            self._framing = "length"
        else:
            self._framing = "close"
            self.reusable = False

    def _parse_chunks(self) -> None:
        while True:
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise UpstreamProtocolError("chunk size or trailer line too long")
                return
            if self._length < 0:  # reading trailers after the last chunk
                line = bytes(self._buffer[:line_end])
                del self._buffer[: line_end + 2]
                if not line:
                    self._finish(b"".join(self._chunks))
                    return
                continue
            size_text = bytes(self._buffer[:line_end]).split(b";", 1)[0].strip()
            if not _HEX_DIGITS.fullmatch(size_text):
                raise UpstreamProtocolError("bad chunk size")
            size = int(size_text, 16)
            if size == 0:
                del self._buffer[: line_end + 2]
                self._length = -1
                continue
            if self._chunked_size + size > MAX_BODY:  # before buffering the chunk
                raise UpstreamProtocolError("response body too large")
            start = line_end + 2
            if len(self._buffer) < start + size + 2:
                return
            if self._buffer[start + size : start + size + 2] != b"\r\n":
                raise UpstreamProtocolError("chunk data not followed by CRLF")
            self._chunks.append(bytes(self._buffer[start : start + size]))
            self._chunked_size += size
            del self._buffer[: start + size + 2]

    def _finish(self, body: bytes) -> None:
        d, self._pending = self._pending, None
        assert self._headers is not None
        if d is not None:
            d.callback(UpstreamResponse(self._status, self._headers, body))

    def _fail(self, exc: Exception) -> None:
        d, self._pending = self._pending, None
        if d is not None:
            d.errback(exc)


class ConnectionPool:
    """Keep-alive connections per origin, reused one request at a time."""

    def __init__(
        self,
        reactor: Any,
        *,
        connect_timeout: float,
        max_idle_per_origin: int = 32,
        idle_timeout: float = 30.0,
    ) -> None:
        self._reactor = reactor
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle_per_origin
        self._idle_timeout = idle_timeout
        self._idle: dict[Origin, list[tuple[ClientProtocol, Any]]] = {}

    async def request(
        self,
        origin: Origin,
        method: bytes,
        target: bytes,
        headers: Iterable[tuple[bytes, list[bytes]]] = (),
        body: bytes | None = None,
    ) -> UpstreamResponse:
        data = serialize_request(origin, method, target, headers, body)
        while True:
            protocol, reused = await self._get(origin)
            try:
                response = await protocol.request(data, head=method == b"HEAD")
            except UpstreamClosed as e:
                # A kept-alive connection the homeserver closed as we re-used it: try once
                # more on a new connection (a reused one can only fail this way so often).
                if reused and not e.got_bytes:
                    continue
                raise
            if protocol.reusable and not protocol.lost:
                self._release(origin, protocol)
            else:
                transport: Any = protocol.transport
                transport.loseConnection()
            return response

    async def _get(self, origin: Origin) -> tuple[ClientProtocol, bool]:
        idle = self._idle.get(origin)
        while idle:
            protocol, expiry = idle.pop()
            expiry.cancel()
            if not protocol.lost:
                return protocol, True
        protocol = ClientProtocol()
        try:
            await connectProtocol(self._endpoint(origin), protocol)  # type: ignore[no-untyped-call]
        except error.ConnectingCancelledError:
            raise defer.CancelledError() from None
        return protocol, False

    def _endpoint(self, origin: Origin) -> Any:
        timeout = self._connect_timeout
        endpoint: Any
        try:
            ip = ipaddress.ip_address(origin.host)
        except ValueError:
            endpoint = HostnameEndpoint(self._reactor, origin.host, origin.port, timeout=timeout)
        else:
            cls = TCP4ClientEndpoint if ip.version == 4 else TCP6ClientEndpoint
            endpoint = cls(self._reactor, origin.host, origin.port, timeout=timeout)
        if origin.scheme == "https":
            from twisted.internet.ssl import optionsForClientTLS

            endpoint = wrapClientTLS(optionsForClientTLS(origin.host), endpoint)
        return endpoint

    def _release(self, origin: Origin, protocol: ClientProtocol) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= self._max_idle:
            transport: Any = protocol.transport
            transport.loseConnection()
            return
        entry: list[Any] = []

        def expire() -> None:
            if entry and entry[0] in idle:
                idle.remove(entry[0])
            expired: Any = protocol.transport
            if expired is not None:
                expired.loseConnection()

        item = (protocol, self._reactor.callLater(self._idle_timeout, expire))
        entry.append(item)
        idle.append(item)

    def close(self) -> None:
        for idle in self._idle.values():
            for protocol, expiry in idle:
                expiry.cancel()
                transport: Any = protocol.transport
                if transport is not None:
                    transport.loseConnection()
        self._idle.clear()
