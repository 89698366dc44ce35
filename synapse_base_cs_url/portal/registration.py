"""Registration and password reset at the portal's address when it does not carry the
client-server API (``client_api: refuse``): the client is sent by ``307`` to the homeserver
that will hold (or holds) the account, as a login is.

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
from collections.abc import Awaitable
from typing import TypeVar

from synapse_base_cs_url.core import Selection
from synapse_base_cs_url.core.json_dict import JsonDict, json_object
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.gateway.access_tokens import access_token
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.password_reset import PasswordReset
from synapse_base_cs_url.portal.placement import Placement
from synapse_base_cs_url.portal.web.redirect import TEMPORARY_REDIRECT, send_redirect
from synapse_base_cs_url.portal.web.request import PortalRequest, client_address

logger = logging.getLogger("synapse_base_cs_url.portal")


T = TypeVar("T")


def read_step(request: PortalRequest, config: PortalConfig) -> tuple[JsonDict, str]:
    """A step's JSON body (empty if it is none: the homeserver judges it) and the client's
    address."""
    if request.too_large:
        raise errors.too_large(config.max_body_size)
    client_ip, _scheme = client_address(request, x_forwarded=config.listen.x_forwarded)
    return json_object(request.body()) or {}, client_ip


async def counted(decided: Awaitable[T], step: str, metrics: PortalMetrics) -> T:
    """Where a step goes; a refusal (400, 429, 503) logged and counted before it is answered."""
    try:
        return await decided
    except errors.MatrixError as e:
        metrics.registration(step, "-", e.status)
        logger.info("%s route=- homeserver=- status=%d problem=%s", step, e.status, e.errcode)
        raise


def redirect_step(
    request: PortalRequest, selection: Selection[Homeserver], step: str, metrics: PortalMetrics
) -> None:
    """Send the client to the homeserver with a ``307``, and log and count it."""
    send_redirect(request, selection.target)
    metrics.registration(step, selection.target.name, TEMPORARY_REDIRECT)
    logger.info(
        "%s route=%s homeserver=%s status=%d",
        step,
        selection.rule_name,
        selection.target.name,
        TEMPORARY_REDIRECT,
    )


class RegistrationHandler:
    def __init__(self, config: PortalConfig, placement: Placement, metrics: PortalMetrics):
        self._config = config
        self._placement = placement
        self._metrics = metrics

    async def register(self, request: PortalRequest, _: re.Match[bytes]) -> None:
        body, client_ip = read_step(request, self._config)
        username = body.get("username")
        auth = body.get("auth")
        session = auth.get("session") if isinstance(auth, dict) else None
        selection = await counted(
            self._placement.for_registration(
                username if isinstance(username, str) and username else None,
                client_ip,
                session if isinstance(session, str) and session else None,
            ),
            "register",
            self._metrics,
        )
        redirect_step(request, selection, "register", self._metrics)

    async def available(self, request: PortalRequest, _: re.Match[bytes]) -> None:
        query = urllib.parse.parse_qs(request.query_bytes.decode("utf-8", "replace"))
        username = (query.get("username") or [""])[0]
        identifier = self._placement.name_of(username) if username else None
        if identifier is None:
            # Nothing the portal can judge: the default homeserver answers.
            default = self._config.homeservers[self._config.default_homeserver]
            redirect_step(request, Selection(default, "default"), "available", self._metrics)
            return
        _body, client_ip = read_step(request, self._config)
        selection = await counted(
            self._placement.where_new(identifier, client_ip), "available", self._metrics
        )
        redirect_step(request, selection, "available", self._metrics)

    async def verification(self, request: PortalRequest, match: re.Match[bytes]) -> None:
        body, client_ip = read_step(request, self._config)
        medium = match.group(1).decode("ascii")
        selection = await counted(
            self._placement.for_verification(medium, body, client_ip), "verify", self._metrics
        )
        redirect_step(request, selection, "verify", self._metrics)


class PasswordResetHandler:
    """The two steps above without the gateway: a ``307`` to the homeserver."""

    def __init__(self, config: PortalConfig, reset: PasswordReset, metrics: PortalMetrics):
        self._config = config
        self._reset = reset
        self._metrics = metrics

    async def request_token(self, request: PortalRequest, match: re.Match[bytes]) -> None:
        body, client_ip = read_step(request, self._config)
        medium = match.group(1).decode("ascii")
        selection = await counted(
            self._reset.for_request_token(medium, body, client_ip), "reset-token", self._metrics
        )
        redirect_step(request, selection, "reset-token", self._metrics)

    async def password(self, request: PortalRequest, _: re.Match[bytes]) -> None:
        if access_token(request.header(b"authorization"), request.query_bytes) is not None:
            # A signed-in user changing a password (by header or, as older clients send it,
            # by query string): that is for their homeserver.
            raise errors.not_here(request.path_bytes.decode("utf-8", "replace"))
        body, _ip = read_step(request, self._config)
        selection = await counted(self._reset.for_password(body), "reset", self._metrics)
        redirect_step(request, selection, "reset", self._metrics)
