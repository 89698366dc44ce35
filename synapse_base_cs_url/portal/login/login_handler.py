"""``POST /login``: read the body, choose the homeserver and the mode, redirect or proxy, log.

A password (or third-party id, or appservice) login is decided at once from its body; an
``m.login.token`` login first asks the SSO token store which homeserver issued the token.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from twisted.internet import defer

from synapse_base_cs_url.core import Selection
from synapse_base_cs_url.core.json_dict import json_object
from synapse_base_cs_url.core.login_types import TOKEN_TYPE
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.login import Mode
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.directory import Directory
from synapse_base_cs_url.portal.directory.identifier import Identifier
from synapse_base_cs_url.portal.errors import CLIENT_CLOSED
from synapse_base_cs_url.portal.login.attempt import CLIENT_LEFT, LoginAttempt
from synapse_base_cs_url.portal.login.body import check_login_body, parse_json_object
from synapse_base_cs_url.portal.login.mode import choose_mode
from synapse_base_cs_url.portal.login.proxy import amend_login_body
from synapse_base_cs_url.portal.login_routes import LoginPlan, LoginRoutes
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.placement import PLACED_ROUTE, Placement
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.sso.login_tokens import SsoTokenStore
from synapse_base_cs_url.portal.state.keys import token_tag
from synapse_base_cs_url.portal.state.shared import guarded
from synapse_base_cs_url.portal.upstream.client import Upstream
from synapse_base_cs_url.portal.upstream.headers import forward_headers, relay_headers
from synapse_base_cs_url.portal.web.redirect import TEMPORARY_REDIRECT, send_redirect
from synapse_base_cs_url.portal.web.request import PortalRequest

logger = logging.getLogger("synapse_base_cs_url.portal")

#: What a login is called in its errors (``503``: "... is not possible right now").
LOGIN = "This login"


class LoginHandler:
    """Routes each login to its homeserver; one log line and one metric per login."""

    def __init__(
        self,
        config: PortalConfig,
        upstream: Upstream,
        sso_tokens: SsoTokenStore,
        metrics: PortalMetrics,
        clock: Clock,
        *,
        learn: Callable[[Mapping[str, object], str], Awaitable[None]] | None = None,
        directory: Directory | None = None,
        placement: Placement | None = None,
        login_routes: LoginRoutes | None = None,
    ) -> None:
        """``learn(answer, homeserver)`` is told of every successful login proxied through
        (the client-server gateway remembers where its tokens belong)."""
        self._learn = learn
        self._directory = directory
        self._placement = placement
        self._config = config
        self._login_routes = login_routes or LoginRoutes(config)
        self._upstream = upstream
        self._sso_tokens = sso_tokens
        self._metrics = metrics
        self._clock = clock

    def handle(self, request: PortalRequest) -> Coroutine[Any, Any, None] | None:
        """Answer at once when the body decides the homeserver; a coroutine otherwise."""
        attempt = self._arrived(request)
        if attempt.login_type == TOKEN_TYPE:
            return self._token_login(attempt)
        plan = self._login_routes.plan(attempt.body, attempt.login_type, attempt.client_ip)
        identifier = plan.to_locate if self._directory is not None else None
        if identifier is not None:
            assert self._directory is not None
            known = self._directory.peek(identifier)
            if known is None:
                return self._located_login(attempt, plan, identifier)
            # Known where it lives, in this process: decided at once, as without the
            # directory (no coroutine for the cache's answer).
            try:
                attempt.selection = self._login_routes.holder(
                    known, identifier, attempt.client_ip, what=LOGIN, ctx=plan.ctx
                )
            except errors.MatrixError as e:
                self._refused(e, identifier)
                raise
        attempt.selection = attempt.selection or self._login_routes.route(plan)
        return self._route(attempt)

    def _arrived(self, request: PortalRequest) -> LoginAttempt:
        started = self._clock.seconds()
        try:
            body = parse_json_object(request.body())
            login_type = check_login_body(body)
        except errors.MatrixError as e:
            self._metrics.reject(e.errcode, e.status)
            logger.info("login rejected: %s %s", e.status, e.errcode)
            raise
        return LoginAttempt(
            request=request,
            started=started,
            body=body,
            login_type=login_type,
            client_ip=request.client_ip,
            scheme=request.scheme,
        )

    async def _located_login(
        self, attempt: LoginAttempt, plan: LoginPlan, identifier: Identifier
    ) -> None:
        """A login by a name that names no server: the homeserver that holds the account,
        else (nobody holds it) the routes."""
        assert self._directory is not None
        try:
            location = await self._directory.locate(identifier, attempt.client_ip, what=LOGIN)
            selection = self._login_routes.holder(
                location, identifier, attempt.client_ip, what=LOGIN, ctx=plan.ctx
            )
            if selection is None and self._placement is not None:
                # Registered through the portal moments ago: where it was placed.
                placed = await self._placement.placed(identifier)
                if placed is not None:
                    selection = Selection(placed, PLACED_ROUTE)
        except errors.MatrixError as e:
            self._refused(e, identifier)
            raise
        attempt.selection = selection or self._login_routes.route(plan)
        proxying = self._route(attempt)
        if proxying is not None:
            await proxying

    def _refused(self, e: errors.MatrixError, identifier: Identifier) -> None:
        self._metrics.reject(e.errcode, e.status)
        logger.info("login rejected: %s %s (%s)", e.status, e.errcode, identifier.tag)

    async def _token_login(self, attempt: LoginAttempt) -> None:
        # The token is single use at the homeserver: forget it here as soon as it is used.
        token: str = attempt.body["token"]
        attempt.token_tag = token_tag(token)
        try:
            issuer = await guarded(self._sso_tokens.take(token), "A token login")
        except errors.MatrixError as e:
            self._metrics.reject(e.errcode, e.status)
            raise
        attempt.selection = self._login_routes.token_login(issuer)
        proxying = self._route(attempt)
        if proxying is not None:
            await proxying

    def _route(self, attempt: LoginAttempt) -> Coroutine[Any, Any, None] | None:
        """Redirect at once, or return the proxying still to do."""
        request = attempt.request
        user_agent = request.header(b"user-agent")
        attempt.mode = choose_mode(
            self._config.mode,
            user_agent.decode("utf-8", "replace") if user_agent else None,
            self._config.proxy_user_agents,
        )
        if request.client_gone:
            # The client left while the decision was awaited (a token store that waits):
            # Twisted has closed the body and would never fire notifyFinish().
            self._log(attempt, CLIENT_CLOSED, CLIENT_LEFT)
            return None
        if attempt.mode is Mode.REDIRECT:
            send_redirect(request, attempt.homeserver)
            self._log(attempt, TEMPORARY_REDIRECT)
            return None
        return self._proxy(attempt)

    async def _proxy(self, attempt: LoginAttempt) -> None:
        request, hs = attempt.request, attempt.homeserver
        exchange = defer.ensureDeferred(
            self._upstream.request(
                hs,
                b"POST",
                request.uri_bytes,
                forward_headers(
                    request.headers, client_ip=attempt.client_ip, scheme=attempt.scheme
                ),
                request.body(),
            )
        )
        # A client that leaves takes its login with it: stop waiting for the homeserver.
        request.when_finished().addErrback(lambda _: exchange.cancel())
        try:
            response = await exchange
        except errors.MatrixError as e:
            request.respond_error(e)
            self._log(attempt, e.status, e.message)
            return
        except defer.CancelledError:
            self._log(attempt, CLIENT_CLOSED, CLIENT_LEFT)
            raise
        request.add_headers(relay_headers(response.headers))
        body = amend_login_body(response.status, response.body, hs.base_url)
        if self._learn is not None and response.status == 200:
            await self._remember_token(body, hs.name)
        request.respond(response.status, body, content_type=None)
        self._log(attempt, response.status)

    async def _remember_token(self, body: bytes, homeserver: str) -> None:
        assert self._learn is not None
        answer = json_object(body)
        if answer is None:
            return
        try:
            await self._learn(answer, homeserver)
        except errors.MatrixError as e:
            # The login itself succeeded: the token is found again (asked for) when used.
            logger.warning("login: could not remember the token's homeserver: %s", e.message)

    def _log(self, attempt: LoginAttempt, status: int, problem: str = "") -> None:
        seconds = self._clock.seconds() - attempt.started
        assert attempt.selection is not None and attempt.mode is not None
        hs, mode = attempt.homeserver.name, attempt.mode.value
        self._metrics.login(hs, mode, status, seconds)
        logger.info(
            "login route=%s homeserver=%s mode=%s status=%d duration=%.1fms%s%s",
            attempt.selection.rule_name,
            hs,
            mode,
            status,
            seconds * 1000,
            f" token={attempt.token_tag}" if attempt.token_tag else "",
            f" problem={problem!r}" if problem else "",
        )
