"""The headers the portal passes each way when it forwards a request to a homeserver, as
Synapse's ``http/proxy.py`` owns its own.

Request headers: hop-by-hop headers (RFC 9110 7.6.1, plus any named in ``Connection``) and
every client-address header the client sent (``X-Forwarded-*``, ``Forwarded``, ``X-Real-IP``
and the others of ``CLIENT_ADDRESS_HEADERS``) are dropped; the portal then sets
``X-Forwarded-For``, ``X-Forwarded-Proto`` and ``X-Real-IP`` from the connection it actually
received, so a homeserver with an ``x_forwarded`` listener, or behind an nginx that takes the
client from ``X-Real-IP`` (``real_ip_header``), records the client's address, not the
portal's, and a client cannot pick the address it is recorded under (which Synapse's
rate limits, IP bans and admin API all trust).
"""

from __future__ import annotations

from collections.abc import Iterator

from twisted.web.http_headers import Headers

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
#: Headers some proxy or CDN reads a client's address from (lower case). The portal sets
#: X-Forwarded-For, X-Forwarded-Proto and X-Real-IP itself; any other of these a client
#: sends would let it choose its address wherever the homeserver's proxy believes that one.
CLIENT_ADDRESS_HEADERS = frozenset(
    {
        b"x-real-ip",
        b"true-client-ip",  # Akamai, Cloudflare Enterprise
        b"cf-connecting-ip",  # Cloudflare
        b"cf-connecting-ipv6",
        b"fastly-client-ip",  # Fastly
        b"x-client-ip",
        b"x-cluster-client-ip",
        b"client-ip",
        b"x-originating-ip",
        b"x-forwarded",
        b"forwarded-for",
        b"forwarded",  # RFC 7239
        b"x-proxyuser-ip",
        b"x-remote-ip",
        b"x-remote-addr",
        b"remote-addr",
        b"x-envoy-external-address",  # Envoy
        b"x-appengine-user-ip",
        b"x-azure-clientip",
        b"x-azure-socketip",
    }
)
# Set again by the agent for the new connection and body.
_REQUEST_RECOMPUTED = frozenset({b"host", b"content-length", b"expect"})
# Login answers are small: ask for them uncompressed so the portal can read and amend them.
_REQUEST_DROPPED = _REQUEST_RECOMPUTED | {b"accept-encoding"}
# The portal writes its own length, date, server and CORS headers.
_RESPONSE_DROPPED = frozenset({b"content-length", b"date", b"server"})


def _connection_tokens(headers: Headers) -> set[bytes]:
    tokens: set[bytes] = set()
    for value in headers.getRawHeaders(b"connection") or ():
        tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def forward_headers(
    headers: Headers, *, client_ip: str, scheme: str, keep_encoding: bool = False
) -> list[tuple[bytes, list[bytes]]]:
    """The headers to send upstream for a client request carrying ``headers``.
    ``keep_encoding``: pass ``Accept-Encoding`` on (the gateway relays answers as they are;
    a login answer is read and amended, so it is asked for uncompressed)."""
    dropped = _REQUEST_RECOMPUTED if keep_encoding else _REQUEST_DROPPED
    drop = HOP_BY_HOP | CLIENT_ADDRESS_HEADERS | dropped | _connection_tokens(headers)
    out = [
        (name, list(values))
        for name, values in headers.getAllRawHeaders()
        if (lower := name.lower()) not in drop and not lower.startswith(b"x-forwarded-")
    ]
    address = client_ip.encode("ascii", "replace")
    out.append((b"X-Forwarded-For", [address]))
    out.append((b"X-Forwarded-Proto", [scheme.encode("ascii", "replace")]))
    out.append((b"X-Real-IP", [address]))
    return out


def relay_headers(
    headers: Headers, *, keep_length: bool = False
) -> Iterator[tuple[bytes, list[bytes]]]:
    """The homeserver's response headers worth passing on to the client. ``keep_length``:
    pass ``Content-Length`` on (the gateway relays bodies as they are; a login answer is
    amended, so the portal writes its own)."""
    dropped = _RESPONSE_DROPPED - {b"content-length"} if keep_length else _RESPONSE_DROPPED
    drop = HOP_BY_HOP | dropped | _connection_tokens(headers)
    for name, values in headers.getAllRawHeaders():
        lower = name.lower()
        if lower in drop or lower.startswith(b"access-control-"):
            continue
        yield name, list(values)
