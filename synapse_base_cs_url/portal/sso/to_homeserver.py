"""The one way a browser is sent to a homeserver's SSO redirect: the path the client asked
for, at that homeserver, with the portal's signed callback as the ``redirectUrl`` (so the
portal learns which homeserver issued the login token). Used straight from the client's
redirect, and after the sign-in page has found the user's homeserver."""

from __future__ import annotations

from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.sso.callback import (
    CallbackSigner,
    callback_url,
    homeserver_redirect_location,
)
from synapse_base_cs_url.portal.web.request import PortalRequest

FOUND = 302


def send_to_homeserver(
    request: PortalRequest,
    homeserver: Homeserver,
    path: bytes,
    query: bytes,
    *,
    public_baseurl: str,
    signer: CallbackSigner,
    now: float,
    to: str,
) -> None:
    """Answer ``302`` to ``homeserver``'s ``path`` with ``query`` (``to``, the client's
    ``redirectUrl``, replaced by the portal's callback)."""
    callback = callback_url(public_baseurl, signer, homeserver.name, to, now)
    location = homeserver_redirect_location(homeserver.base_url, path, query, callback)
    request.set_header(b"Location", location)
    request.set_header(b"Cache-Control", b"no-store")
    request.respond(FOUND, b"", content_type=None)
