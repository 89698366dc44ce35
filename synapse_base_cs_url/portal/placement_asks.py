"""``POST /_synapse_base_cs_url/v1/placement/ask``: a homeserver's module asks, before Synapse
creates an account or binds an address, whether it may (:meth:`Placement.reserve` decides).

The ask is authenticated with the asking homeserver's ``placement_secret_file`` (compared in
constant time with every homeserver's, so the answer takes as long whichever matched): the
portal knows which homeserver asks, and nobody else can ask or reserve. The identifier is in
the body, never in the URL; logs carry its tag (a short hash), never the name or address.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from synapse_base_cs_url.core.placement_protocol import FOLLOW_ROUTES, LOCALPART, read_identifier
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.homeservers import Homeserver, homeserver_by_secret
from synapse_base_cs_url.portal.directory.identifier import LOCALPART as NAME
from synapse_base_cs_url.portal.directory.identifier import Identifier, asked_address
from synapse_base_cs_url.portal.logs import info_line
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.placement import Placement
from synapse_base_cs_url.portal.web.json_body import parse_json_object
from synapse_base_cs_url.portal.web.request import PortalRequest, access_token

logger = logging.getLogger("synapse_base_cs_url.portal")

REFUSALS = {
    errors.FORBIDDEN: "This name or address belongs on another homeserver of this deployment.",
    errors.USER_IN_USE: "This name is taken on another homeserver of this deployment.",
    errors.THREEPID_IN_USE: "This address is in use on another homeserver of this deployment.",
}


ALLOWED = json.dumps({"allowed": True}).encode()


class PlacementAsks:
    """Answers the modules' asks (only the homeservers with a placement secret may ask)."""

    def __init__(
        self, homeservers: Mapping[str, Homeserver], placement: Placement, metrics: PortalMetrics
    ) -> None:
        self._homeservers = homeservers
        self._placement = placement
        self._metrics = metrics

    async def ask(self, request: PortalRequest) -> None:
        given = access_token(request.header(b"authorization"), b"")
        homeserver = homeserver_by_secret(self._homeservers, given)
        if homeserver is None:
            self._metrics.placement_ask("-", "-", "forbidden")
            raise errors.MatrixError(
                401, errors.UNKNOWN_TOKEN, "Ask with this homeserver's placement secret"
            )
        try:
            body = parse_json_object(request.body())
            identifier = _identifier(body)
        except errors.MatrixError:
            self._metrics.placement_ask(homeserver, "-", "bad")
            raise
        kind = "name" if identifier.medium == NAME else identifier.medium
        try:
            verdict = await self._placement.reserve(
                identifier, homeserver, follow_routes=body.get(FOLLOW_ROUTES) is True
            )
        except errors.MatrixError as e:
            self._metrics.placement_ask(homeserver, kind, "unavailable")
            logger.warning(
                "placement ask by %s for %s: %s %s", homeserver, identifier.tag, e.status, e.errcode
            )
            raise
        refusal = verdict.refusal
        self._metrics.placement_ask(homeserver, kind, "allowed" if refusal is None else "refused")
        if refusal is not None or verdict.reserved:
            # A reservation or a refusal: what an operator looks for. An ask that changes
            # nothing is counted, and logged at debug.
            outcome = "refused" if refusal is not None else "reserved"
            info_line(logger, "placement ask by %s for %s: %s", homeserver, identifier.tag, outcome)
        else:
            logger.debug(
                "placement ask by %s for %s: allowed, nothing new", homeserver, identifier.tag
            )
        if refusal is None:
            request.respond(200, ALLOWED)
            return
        answer = {"allowed": False, "errcode": refusal, "error": REFUSALS[refusal]}
        request.respond(200, json.dumps(answer).encode())


def _identifier(body: dict[str, object]) -> Identifier:
    """The name or address asked about, as the directory looks it up (lower-cased, an
    e-mail canonicalised as Synapse does)."""
    try:
        medium, address = read_identifier(body)
    except ValueError as e:
        raise errors.bad_json(str(e)) from None
    if medium == LOCALPART:
        return Identifier(NAME, address.lower())
    identifier = asked_address(medium, address)
    if identifier is None:
        raise errors.MatrixError(400, errors.INVALID_PARAM, f"'address' is not an {medium}")
    return identifier
