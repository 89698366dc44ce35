"""Small Twisted web helpers shared by the portal's handlers: CORS, answers, client address."""

from __future__ import annotations

from typing import Any, TypeAlias

from synapse_base_cs_url.portal.errors import MatrixError

Request: TypeAlias = Any
"""A ``twisted.web.server.Request``: Twisted does not annotate it, so strict code holds it as
``Any`` (and keeps what it does with it in this module and ``server``)."""

JSON = b"application/json"

#: Exactly what Synapse's ``synapse.http.server.set_cors_headers`` sends for client API paths,
#: so browser clients see the same policy from the portal as from the homeserver.
CORS_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"Access-Control-Allow-Origin", b"*"),
    (b"Access-Control-Allow-Methods", b"GET, HEAD, POST, PUT, DELETE, OPTIONS"),
    (b"Access-Control-Allow-Headers", b"X-Requested-With, Content-Type, Authorization, Date"),
    (b"Access-Control-Expose-Headers", b"Synapse-Trace-Id, Server"),
)


def set_cors_headers(request: Request) -> None:
    for name, value in CORS_HEADERS:
        request.setHeader(name, value)


def respond(request: Request, status: int, body: bytes, content_type: bytes | None = JSON) -> None:
    """Write a complete answer, unless the client has already gone away."""
    if getattr(request, "_disconnected", False) or request.finished:
        return
    request.setResponseCode(status)
    if content_type is not None:
        request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Content-Length", str(len(body)).encode())
    if request.method != b"HEAD":
        request.write(body)
    request.finish()


def respond_error(request: Request, error: MatrixError) -> None:
    respond(request, error.status, error.body())


def client_address(request: Request, *, x_forwarded: bool) -> tuple[str, str]:
    """The client's IP and scheme (``http``/``https``).

    With ``x_forwarded`` (the portal sits behind a reverse proxy it trusts) they come from
    the proxy's ``X-Forwarded-For`` (first address) and ``X-Forwarded-Proto``, as Synapse
    reads them on an ``x_forwarded`` listener; otherwise from the TCP connection itself.
    """
    peer = request.getClientAddress()
    ip = getattr(peer, "host", None) or "unknown"
    scheme = "https" if request.isSecure() else "http"
    if x_forwarded:
        forwarded_for = request.getHeader(b"x-forwarded-for")
        if forwarded_for:
            first = forwarded_for.split(b",")[0].strip()
            if first:
                ip = first.decode("ascii", "replace")
        proto = request.getHeader(b"x-forwarded-proto")
        if proto:
            scheme = proto.split(b",")[0].strip().decode("ascii", "replace").lower() or scheme
    return ip, scheme
