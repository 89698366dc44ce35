"""The portal's two SSO endpoints: the redirect to a homeserver's identity provider, and the
callback that learns which homeserver issued a login token (see ``callback``)."""

from __future__ import annotations

import logging
import re

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.records import RecordLimiter
from synapse_base_cs_url.portal.sso.callback import (
    CallbackSigner,
    add_login_token,
    check_redirect_url,
    confirmation_page,
    parse_callback,
    redirect_url_param,
    whitelisted,
)
from synapse_base_cs_url.portal.sso.sign_in import SignIn
from synapse_base_cs_url.portal.sso.to_homeserver import FOUND, ToHomeserver
from synapse_base_cs_url.portal.sso_tokens import SsoTokenStore
from synapse_base_cs_url.portal.state.keys import token_tag
from synapse_base_cs_url.portal.state.shared import guarded
from synapse_base_cs_url.portal.web.request import PortalRequest

logger = logging.getLogger("synapse_base_cs_url.portal")


class SsoHandler:
    def __init__(
        self,
        config: PortalConfig,
        tokens: SsoTokenStore,
        signer: CallbackSigner,
        metrics: PortalMetrics,
        clock: Clock,
        *,
        records: RecordLimiter,
        sign_in: SignIn,
        to_homeserver: ToHomeserver,
    ) -> None:
        """``records``: a callback records a login token, for a client within its limit;
        ``sign_in``: the page that asks who signs in with a shared provider;
        ``to_homeserver``: how a browser is sent to a homeserver's redirect."""
        self._records = records
        self._sign_in = sign_in
        self._to_homeserver = to_homeserver
        self._config = config
        self._tokens = tokens
        self._signer = signer
        self._metrics = metrics
        self._clock = clock

    def redirect(self, request: PortalRequest, match: re.Match[bytes]) -> None:
        """Send the browser to the homeserver serving the identity provider in the path, with
        the portal's callback as the ``redirectUrl``; a provider several homeservers offer
        first asks who signs in (``sign_in``)."""
        raw_idp = match.group("idp")
        idp = raw_idp.decode("ascii") if raw_idp else None
        query = request.query_bytes
        to = redirect_url_param(query)
        check_redirect_url(to)
        sso = self._config.sso
        # Legacy CAS goes to sso.default, as its flow is listed from there.
        offered = (sso.default,) if b"/login/cas/" in request.path_bytes else sso.offered_by(idp)
        if len(offered) > 1:
            self._sign_in.ask(request, idp, offered)
            return
        self._to_homeserver.send(request, offered[0], request.path_bytes, query, to)
        logger.info("sso redirect idp=%s homeserver=%s", idp or "-", offered[0])

    async def sign_in(self, request: PortalRequest, _: re.Match[bytes]) -> None:
        """The sign-in page's form: where the user's account lives, then its homeserver."""
        await self._sign_in.submit(request)

    async def callback(self, request: PortalRequest, match: re.Match[bytes]) -> None:
        """The homeserver sends the browser here with a login token: record who issued it,
        then send the browser on to the client (or ask first, see ``callback``)."""
        try:
            callback = parse_callback(
                request.query_bytes,
                self._signer,
                tuple(self._config.homeservers),
                self._clock.seconds(),
            )
        except errors.MatrixError as e:
            self._metrics.sso_callback("refused")
            logger.info("sso callback refused: %s %s", e.status, e.errcode)
            raise
        client_ip = request.client_ip
        try:
            # A signed callback can be replayed with any loginToken: each is a record.
            self._records.allow(client_ip)
        except errors.MatrixError:
            self._metrics.sso_callback("limited")
            logger.info("sso callback refused: 429 (client over its limit)")
            raise
        try:
            recorded = await guarded(
                self._tokens.remember(callback.login_token, callback.hs), "Single sign-on"
            )
        except errors.MatrixError:
            self._metrics.sso_callback("unavailable")
            raise
        target = add_login_token(callback.to, callback.login_token)
        request.set_header(b"Cache-Control", b"no-store")
        request.set_header(b"Referrer-Policy", b"no-referrer")
        confirm = not whitelisted(callback.to, self._config.sso.client_whitelist)
        self._metrics.sso_callback("recorded" if recorded else "replayed")
        logger.info(
            "sso callback homeserver=%s token=%s%s%s",
            callback.hs,
            token_tag(callback.login_token),
            " confirm=page" if confirm else "",
            "" if recorded else " already_recorded",
        )
        if confirm:
            body = confirmation_page(target, callback.to)
            request.respond(200, body, content_type=b"text/html; charset=utf-8")
        else:
            request.set_header(b"Location", target.encode())
            request.respond(FOUND, b"", content_type=None)
