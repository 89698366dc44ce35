"""The one way a browser is sent to a homeserver's SSO redirect: the path the client asked
for, at that homeserver, with the portal's signed callback as the ``redirectUrl`` (so the
portal learns which homeserver issued the login token). Used straight from the client's
redirect, and after the sign-in page has found the user's homeserver."""

from __future__ import annotations

from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.sso.callback import (
    CallbackSigner,
    callback_url,
    homeserver_redirect_location,
)
from synapse_base_cs_url.portal.web.request import PortalRequest

FOUND = 302


class ToHomeserver:
    """Sends browsers to homeservers' SSO redirects, with callbacks signed by ``signer`` at
    ``config``'s ``public_baseurl``."""

    def __init__(self, config: PortalConfig, signer: CallbackSigner, clock: Clock) -> None:
        self._config = config
        self._signer = signer
        self._clock = clock

    def send(self, request: PortalRequest, name: str, path: bytes, query: bytes, to: str) -> None:
        """Answer ``302`` to homeserver ``name``'s ``path`` with ``query`` (``to``, the
        client's ``redirectUrl``, replaced by the portal's callback)."""
        homeserver = self._config.homeservers[name]
        now = self._clock.seconds()
        callback = callback_url(self._config.public_baseurl, self._signer, name, to, now)
        location = homeserver_redirect_location(homeserver.base_url, path, query, callback)
        request.set_header(b"Location", location)
        request.set_header(b"Cache-Control", b"no-store")
        request.respond(FOUND, b"", content_type=None)
