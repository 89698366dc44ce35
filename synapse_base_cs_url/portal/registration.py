"""Registration and password reset at the portal's address without the gateway
(``client_api: refuse``): each step is decided by :mod:`account_steps` (as the gateway
decides it) and the client is sent there by ``307``, as a login is. A signed-in password
change (an access token, in the header or the query string) is for the user's own
homeserver: ``404`` here."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from synapse_base_cs_url.core.json_dict import json_object
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.account_steps import (
    RESET,
    AccountSteps,
    Step,
    StepRequest,
    report_step,
)
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.web.redirect import TEMPORARY_REDIRECT, send_redirect
from synapse_base_cs_url.portal.web.request import PortalRequest, access_token

logger = logging.getLogger("synapse_base_cs_url.portal")

Handler = Callable[[PortalRequest, "re.Match[bytes]"], Coroutine[Any, Any, None]]


class AccountRedirects:
    """The redirect transport of the account steps."""

    def __init__(self, config: PortalConfig, steps: AccountSteps, metrics: PortalMetrics):
        self._config = config
        self._steps = steps
        self._metrics = metrics

    def handler_for(self, step: Step) -> Handler:
        """The URL table's handler for ``step``'s path."""

        async def handle(request: PortalRequest, match: re.Match[bytes]) -> None:
            await self._redirect(step, request, match)

        return handle

    async def _redirect(self, step: Step, request: PortalRequest, match: re.Match[bytes]) -> None:
        if step.name == RESET and access_token(
            request.header(b"authorization"), request.query_bytes
        ):
            # A signed-in user changing a password (by header or, as older clients send it,
            # by query string): that is for their homeserver.
            raise errors.not_here(request.path_bytes.decode("utf-8", "replace"))
        client_ip = request.client_ip
        body = json_object(request.body()) or {}
        try:
            selection = await self._steps.decide(
                step, StepRequest(match, request.query_bytes, body, client_ip)
            )
        except errors.MatrixError as e:
            report_step(self._metrics, step.name, "-", "-", e.status, problem=e.errcode)
            raise
        send_redirect(request, selection.target)
        report_step(
            self._metrics,
            step.name,
            selection.rule_name,
            selection.target.name,
            TEMPORARY_REDIRECT,
        )
