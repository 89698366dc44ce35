"""Sending a client to a homeserver with a ``307`` (a login in redirect mode; a registration or
a password reset step without the gateway).

A 307 (unlike 301/302/303) obliges the client to repeat the same method with the same body,
so the homeserver receives the client's own ``POST /login`` from the client's own address.
"""

from __future__ import annotations

from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.web.request import PortalRequest

TEMPORARY_REDIRECT = 307


def redirect_location(homeserver: Homeserver, path_and_query: bytes) -> bytes:
    """``<base_url><same path and query>``; ``base_url`` may carry a path prefix."""
    return homeserver.base_url.encode() + path_and_query


def send_redirect(request: PortalRequest, homeserver: Homeserver) -> None:
    """Answer with a 307 to the homeserver. CORS headers are already set on ``request``:
    browsers only follow a cross-origin redirect whose response allows the origin."""
    request.set_header(b"Location", redirect_location(homeserver, request.uri_bytes))
    request.set_header(b"Cache-Control", b"no-store")
    request.respond(TEMPORARY_REDIRECT, b"", content_type=None)
