"""``POST /login``: read the body, ask where the account lives (:mod:`homes`), choose the
mode, redirect or proxy, log: each step once, in that order.

A login whose home is known at once (its body names it, or this process has the directory's
answer at hand) is answered without a coroutine; one that must be looked up (the account
directory, the SSO token store) is answered when the lookup is done.
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
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.config.login import Mode
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.errors import CLIENT_CLOSED
from synapse_base_cs_url.portal.homes import Decided, Homes
from synapse_base_cs_url.portal.login.attempt import CLIENT_LEFT, LoginAttempt
from synapse_base_cs_url.portal.login.body import check_login_body
from synapse_base_cs_url.portal.login.mode import choose_mode
from synapse_base_cs_url.portal.login.proxy import amend_login_body
from synapse_base_cs_url.portal.logs import info_line
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.state.keys import token_tag
from synapse_base_cs_url.portal.upstream.client import Upstream
from synapse_base_cs_url.portal.upstream.headers import forward_headers, relay_headers
from synapse_base_cs_url.portal.web.json_body import parse_json_object
from synapse_base_cs_url.portal.web.redirect import TEMPORARY_REDIRECT, send_redirect
from synapse_base_cs_url.portal.web.request import PortalRequest

logger = logging.getLogger("synapse_base_cs_url.portal")


class LoginHandler:
    """Routes each login to its homeserver; one log line and one metric per login."""

    def __init__(
        self,
        config: PortalConfig,
        upstream: Upstream,
        homes: Homes,
        metrics: PortalMetrics,
        clock: Clock,
        *,
        learn: Callable[[Mapping[str, object], str], Awaitable[None]] | None = None,
    ) -> None:
        """``learn(answer, homeserver)`` is told of every successful login proxied through
        (the client-server gateway remembers where its tokens belong)."""
        self._learn = learn
        self._config = config
        self._homes = homes
        self._upstream = upstream
        self._metrics = metrics
        self._clock = clock

    def handle(self, request: PortalRequest) -> Coroutine[Any, Any, None] | None:
        """Answer at once when the login's home is known at once; a coroutine otherwise."""
        attempt = None
        try:
            attempt = self._arrived(request)
            decided = self._decide(attempt)
        except errors.MatrixError as e:
            self._refused(e, attempt)
            raise
        if isinstance(decided, Selection):
            attempt.selection = decided
            return self._deliver(attempt)
        return self._deliver_when_decided(attempt, decided)

    def _arrived(self, request: PortalRequest) -> LoginAttempt:
        """The login as it arrived: its body checked, and the mode its client needs."""
        started = self._clock.seconds()
        body = parse_json_object(request.body())
        login_type = check_login_body(body)
        user_agent = request.header(b"user-agent")
        return LoginAttempt(
            request=request,
            started=started,
            body=body,
            login_type=login_type,
            client_ip=request.client_ip,
            scheme=request.scheme,
            mode=choose_mode(
                self._config.mode,
                user_agent.decode("utf-8", "replace") if user_agent else None,
                self._config.proxy_user_agents,
            ),
        )

    def _decide(self, attempt: LoginAttempt) -> Decided:
        if attempt.login_type == TOKEN_TYPE:
            token: str = attempt.body["token"]
            attempt.token_tag = token_tag(token)
            return self._homes.of_token(token)
        plan = self._homes.routes.plan(attempt.body, attempt.login_type, attempt.client_ip)
        attempt.looked_up = plan.to_locate
        return self._homes.of_plan(plan, attempt.client_ip)

    async def _deliver_when_decided(
        self, attempt: LoginAttempt, decided: Coroutine[Any, Any, Selection[Homeserver]]
    ) -> None:
        try:
            attempt.selection = await decided
        except errors.MatrixError as e:
            self._refused(e, attempt)
            raise
        proxying = self._deliver(attempt)
        if proxying is not None:
            await proxying

    def _refused(self, e: errors.MatrixError, attempt: LoginAttempt | None) -> None:
        """A login refused before it reached a homeserver (its body, or its home)."""
        self._metrics.reject(e.errcode, e.status)
        looked_up = attempt.looked_up if attempt is not None else None
        info_line(
            logger,
            "login rejected: %s %s%s",
            e.status,
            e.errcode,
            f" ({looked_up.tag})" if looked_up is not None else "",
        )

    def _deliver(self, attempt: LoginAttempt) -> Coroutine[Any, Any, None] | None:
        """Redirect at once, or return the proxying still to do."""
        request = attempt.request
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
        assert attempt.selection is not None
        hs, mode = attempt.homeserver.name, attempt.mode.value
        self._metrics.login(hs, mode, status, seconds)
        info_line(
            logger,
            "login route=%s homeserver=%s mode=%s status=%d duration=%.1fms%s%s",
            attempt.selection.rule_name,
            hs,
            mode,
            status,
            seconds * 1000,
            f" token={attempt.token_tag}" if attempt.token_tag else "",
            f" problem={problem!r}" if problem else "",
        )
