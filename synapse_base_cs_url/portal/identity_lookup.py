"""``GET /_matrix/identity/api/v1/info?medium=email&address=...`` (with ``identity_info: true``):
which homeserver an e-mail address or phone number belongs to, in the shape Tchap's clients
ask before login: ``{"hs": "<server_name>"}``, the homeserver that holds it, else the one a
login by it would be sent to (:mod:`homes`: the same decision as a login).

``GET /_matrix/identity/api/v1/internal-info`` answers the same with ``"requires_invite":
false, "invited": false`` (the shape Tchap's services read), only to a homeserver's module
(its placement secret).

What this reveals is what a redirect already does (where a login by the address would go);
a lookup the directory must make counts against the client's directory limits
(``directory.burst``, ``per_second``: ``429 M_LIMIT_EXCEEDED``).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.homeservers import Homeserver, homeserver_by_secret
from synapse_base_cs_url.portal.directory.identifier import asked_address
from synapse_base_cs_url.portal.homes import Homes
from synapse_base_cs_url.portal.web.request import PortalRequest, access_token

#: What a lookup is called in its errors (``503``: "... is not possible right now").
LOOKUP = "This lookup"


class IdentityLookup:
    def __init__(self, homeservers: Mapping[str, Homeserver], homes: Homes) -> None:
        self._homes = homes
        self._homeservers = homeservers

    async def info(self, request: PortalRequest) -> None:
        home = await self._home(request)
        request.respond(200, json.dumps({"hs": home}).encode())

    async def internal_info(self, request: PortalRequest) -> None:
        given = access_token(request.header(b"authorization"), b"")
        if homeserver_by_secret(self._homeservers, given) is None:
            raise errors.MatrixError(
                401, errors.UNKNOWN_TOKEN, "Ask with a homeserver's placement secret"
            )
        home = await self._home(request)
        answer = {"hs": home, "requires_invite": False, "invited": False}
        request.respond(200, json.dumps(answer).encode())

    async def _home(self, request: PortalRequest) -> str:
        """The server name of the homeserver the address belongs to."""
        query = urllib.parse.parse_qs(request.query_bytes.decode("utf-8", "replace"))
        medium, address = (query.get(key, [""])[0] for key in ("medium", "address"))
        if not medium or not address:
            raise errors.MatrixError(
                400, errors.MISSING_PARAM, "Give a 'medium' (email or msisdn) and an 'address'"
            )
        if medium not in ("email", "msisdn"):
            raise errors.MatrixError(400, errors.INVALID_PARAM, "'medium' must be email or msisdn")
        identifier = asked_address(medium, address)
        if identifier is None:
            raise errors.MatrixError(400, errors.INVALID_PARAM, f"'address' is not an {medium}")
        home = await self._homes.of_identifier(identifier, request.client_ip, what=LOOKUP)
        hs = home.target
        return hs.server_name or urllib.parse.urlsplit(hs.base_url).netloc
