"""Registration at the portal's address when it does not carry the client-server API
(``client_api: refuse``): the client is sent by ``307`` to the homeserver that will hold the
account, as a login is.

- ``POST /register``: placed once (``placement.py``): a name held on any homeserver is
  refused with ``400 M_USER_IN_USE``; every later user-interactive step of the same
  registration (clients send the ``username`` again with each) goes to the same homeserver.
- ``GET /register/available``: a name held anywhere is not available; otherwise the
  homeserver it would be placed on answers (its own rules: reserved names, appservices).
"""

from __future__ import annotations

import logging
import re
import urllib.parse

from synapse_base_cs_url.core import Selection
from synapse_base_cs_url.core.json_dict import json_object
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.login.redirect import TEMPORARY_REDIRECT, send_redirect
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.placement import Placement
from synapse_base_cs_url.portal.web.request import PortalRequest, client_address

logger = logging.getLogger("synapse_base_cs_url.portal")

REGISTER_PATH = re.compile(rb"/_matrix/client/(?:r0|v3)/register")
AVAILABLE_PATH = re.compile(rb"/_matrix/client/(?:r0|v3)/register/available")


class RegistrationHandler:
    def __init__(self, config: PortalConfig, placement: Placement, metrics: PortalMetrics):
        self._config = config
        self._placement = placement
        self._metrics = metrics

    async def register(self, request: PortalRequest, _: re.Match[bytes]) -> None:
        if request.too_large:
            raise errors.too_large(self._config.max_body_size)
        body = json_object(request.body()) or {}
        username = body.get("username")
        client_ip, _scheme = client_address(request, x_forwarded=self._config.listen.x_forwarded)
        try:
            selection = await self._placement.for_registration(
                username if isinstance(username, str) else None, client_ip
            )
        except errors.MatrixError as e:
            self._log("register", e.status, None, e.errcode)
            raise
        self._send(request, selection, "register")

    async def available(self, request: PortalRequest, _: re.Match[bytes]) -> None:
        query = urllib.parse.parse_qs(request.query_bytes.decode("utf-8", "replace"))
        username = (query.get("username") or [""])[0]
        identifier = self._placement.name_of(username) if username else None
        if identifier is None:
            # Nothing the portal can judge: the default homeserver answers.
            default = self._config.homeservers[self._config.default_homeserver]
            self._send(request, Selection(default, "default"), "available")
            return
        client_ip, _scheme = client_address(request, x_forwarded=self._config.listen.x_forwarded)
        try:
            selection = await self._placement.where_new(identifier, client_ip)
        except errors.MatrixError as e:
            self._log("available", e.status, None, e.errcode)
            raise
        self._send(request, selection, "available")

    def _send(self, request: PortalRequest, selection: Selection[Homeserver], what: str) -> None:
        send_redirect(request, selection.target)
        self._log(what, TEMPORARY_REDIRECT, selection)

    def _log(
        self, what: str, status: int, selection: Selection[Homeserver] | None, problem: str = ""
    ) -> None:
        self._metrics.registration(what, selection.target.name if selection else "-", status)
        logger.info(
            "%s route=%s homeserver=%s status=%d%s",
            what,
            selection.rule_name if selection else "-",
            selection.target.name if selection else "-",
            status,
            f" problem={problem}" if problem else "",
        )
