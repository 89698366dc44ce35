"""The portal's Twisted web site: one leaf resource dispatching on method and path."""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import Resource

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config import Mode, PortalConfig
from synapse_base_cs_url.portal.decide import Decision, LoginRouter, choose_mode
from synapse_base_cs_url.portal.discovery import Discovery, well_known_client
from synapse_base_cs_url.portal.http import (
    Request,
    client_address,
    respond,
    respond_error,
    set_cors_headers,
)
from synapse_base_cs_url.portal.login_body import (
    TOKEN_TYPE,
    check_login_body,
    parse_json_object,
)
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.proxy import amend_login_body, forward_headers, relay_headers
from synapse_base_cs_url.portal.redirect import TEMPORARY_REDIRECT, send_redirect
from synapse_base_cs_url.portal.sso import (
    CALLBACK_PATH,
    CallbackSigner,
    add_login_token,
    callback_url,
    check_redirect_url,
    confirmation_page,
    homeserver_redirect_location,
    parse_callback,
    redirect_url_param,
    whitelisted,
)
from synapse_base_cs_url.portal.sso_tokens import (
    InMemorySsoTokenStore,
    SsoTokenStore,
    token_hash_for_logs,
)
from synapse_base_cs_url.portal.upstream import Upstream

logger = logging.getLogger("synapse_base_cs_url.portal")

LOGIN_PATH = re.compile(rb"/_matrix/client/(?:api/v1|r0|v3)/login")
VERSIONS_PATH = b"/_matrix/client/versions"
# Synapse's SsoRedirectServlet paths; the identity provider id as Synapse allows it.
SSO_REDIRECT_PATH = re.compile(
    rb"/_matrix/client/(?:(?:api/v1|r0|v3)/login/(?:sso|cas)/redirect"
    rb"|(?:r0|v3)/login/sso/redirect/(?P<idp>[A-Za-z0-9_.~-]+))"
)
FOUND = 302
CLIENT_LEFT = "client closed the connection"
WELL_KNOWN_PATH = b"/.well-known/matrix/client"
HEALTH_PATH = b"/health"
METRICS_PATH = b"/metrics"


class PortalRequest(server.Request):
    """A request that stops buffering its body past ``max_body_size`` bytes."""

    max_body_size = 64 * 1024
    too_large = False
    _received = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        base: Any = super()
        base.__init__(*args, **kwargs)
        # Login bodies are JSON: skip Twisted's check for HTML form bodies on every POST (it
        # parses Content-Type with the email package, a noticeable share of a redirect's cost).
        self._parsePOSTFormSubmission = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body_size:
            self.too_large = True
        # Always in memory (at most max_body_size is kept): Twisted would spool a body
        # without Content-Length, or of 100 kB or more, to a temporary file, i.e. write
        # the password to disk.
        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > self.max_body_size:
            self.too_large = True
        if not self.too_large:
            base: Any = super()
            base.handleContentChunk(data)


def request_class(max_body_size: int) -> type[PortalRequest]:
    return type("PortalRequest", (PortalRequest,), {"max_body_size": max_body_size})


class PortalSite(server.Site):
    """A Site without Twisted's access log: the portal logs each routed login itself."""

    def log(self, request: Any) -> None:
        pass


class PortalResource(Resource):
    isLeaf = True

    def __init__(
        self,
        config: PortalConfig,
        upstream: Upstream,
        discovery: Discovery,
        metrics: PortalMetrics,
        clock: Callable[[], float] = time.monotonic,
        *,
        sso_tokens: SsoTokenStore | None = None,
        signer: CallbackSigner | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        Resource.__init__(self)  # type: ignore[no-untyped-call]
        self._config = config
        self._upstream = upstream
        self._discovery = discovery
        self._metrics = metrics
        self._router = LoginRouter(config)
        self._clock = clock
        self._well_known = well_known_client(config.public_baseurl)
        self._sso_tokens: SsoTokenStore = sso_tokens or InMemorySsoTokenStore(
            config.sso.token_ttl, config.sso.max_tokens
        )
        self._signer = signer or CallbackSigner()
        self._wall_clock = wall_clock

    # -- dispatch -------------------------------------------------------------------------

    def render(self, request: Request) -> int:
        set_cors_headers(request)
        try:
            self._dispatch(request)
        except errors.MatrixError as e:
            respond_error(request, e)
        except Exception:
            logger.exception("unexpected error handling %s", _describe_request(request))
            respond_error(request, errors.MatrixError(500, errors.UNKNOWN, "Internal error"))
        return server.NOT_DONE_YET

    def _dispatch(self, request: Request) -> None:
        method, path = request.method, request.path
        if method == b"OPTIONS":
            # As Synapse answers every CORS preflight: 204 with the CORS headers.
            respond(request, 204, b"", content_type=None)
        elif LOGIN_PATH.fullmatch(path):
            if method == b"POST":
                self._login(request)
            elif method in (b"GET", b"HEAD"):
                self._later(request, self._discovery.login_flows(path))
            else:
                raise errors.method_not_allowed(method.decode("ascii", "replace"), path.decode())
        elif path == VERSIONS_PATH and method in (b"GET", b"HEAD"):
            self._later(request, self._discovery.versions(path))
        elif path == WELL_KNOWN_PATH and method in (b"GET", b"HEAD"):
            respond(request, 200, self._well_known)
        elif path == HEALTH_PATH and method in (b"GET", b"HEAD"):
            respond(request, 200, b"OK", content_type=b"text/plain; charset=utf-8")
        elif path == METRICS_PATH and method == b"GET" and self._config.metrics:
            respond(request, 200, self._metrics.render(), self._metrics.content_type.encode())
        elif (sso := SSO_REDIRECT_PATH.fullmatch(path)) and method in (b"GET", b"HEAD"):
            idp = sso.group("idp")
            self._sso_redirect(request, idp.decode("ascii") if idp else None)
        elif path == CALLBACK_PATH and method == b"GET":  # not HEAD: it records the token
            self._later_finish(request, self._sso_callback(request))
        elif self._serves(path):
            raise errors.method_not_allowed(method.decode("ascii", "replace"), path.decode())
        else:
            raise errors.not_here(path.decode("utf-8", "replace"))

    def _serves(self, path: bytes) -> bool:
        """Whether ``path`` is one of the portal's own (for any method)."""
        return (
            path in (VERSIONS_PATH, WELL_KNOWN_PATH, HEALTH_PATH, CALLBACK_PATH)
            or (path == METRICS_PATH and self._config.metrics)
            or SSO_REDIRECT_PATH.fullmatch(path) is not None
        )

    def _later(self, request: Request, answer: Any) -> None:
        d = defer.ensureDeferred(answer)
        d.addCallbacks(lambda body: respond(request, 200, body), self._on_error, (), {}, (request,))

    def _later_finish(self, request: Request, answer: Any) -> None:
        """Run ``answer`` (which writes the response itself); errors as in ``_later``."""
        defer.ensureDeferred(answer).addErrback(self._on_error, request)

    def _on_error(self, failure: Failure, request: Request) -> None:
        error = failure.value
        if isinstance(error, errors.MatrixError):
            respond_error(request, error)
        elif isinstance(error, defer.CancelledError):
            pass  # the client went away
        else:
            logger.error(
                "unexpected error handling %s: %s",
                _describe_request(request),
                failure.getTraceback(),
            )
            respond_error(request, errors.MatrixError(500, errors.UNKNOWN, "Internal error"))

    # -- login ----------------------------------------------------------------------------

    def _login(self, request: Request) -> None:
        started = self._clock()
        try:
            if getattr(request, "too_large", False):
                raise errors.too_large(self._config.max_body_size)
            assert request.content is not None
            body = parse_json_object(request.content.read())
            login_type = check_login_body(body)
        except errors.MatrixError as e:
            self._metrics.reject(e.errcode, e.status)
            logger.info("login rejected: %s %s", e.status, e.errcode)
            raise
        client_ip, scheme = client_address(request, x_forwarded=self._config.listen.x_forwarded)
        if login_type == TOKEN_TYPE:
            self._later_finish(
                request, self._token_login(request, body, client_ip, scheme, started)
            )
            return
        decision = self._router.decide(body, login_type, client_ip)
        self._route(request, decision, client_ip, scheme, started)

    async def _token_login(
        self, request: Request, body: dict[str, Any], client_ip: str, scheme: str, started: float
    ) -> None:
        # The token is single use at the homeserver: forget it here as soon as it is used.
        token: str = body["token"]
        issuer = await self._sso_tokens.take(token)
        decision = self._router.decide(body, TOKEN_TYPE, client_ip, token_issuer=issuer)
        self._route(
            request, decision, client_ip, scheme, started, token_tag=token_hash_for_logs(token)
        )

    def _route(
        self,
        request: Request,
        decision: Decision,
        client_ip: str,
        scheme: str,
        started: float,
        *,
        token_tag: str = "",
    ) -> None:
        mode = self._config.mode
        if mode is Mode.AUTO:
            user_agent = request.getHeader(b"user-agent")
            mode = choose_mode(
                mode,
                user_agent.decode("utf-8", "replace") if user_agent else None,
                self._config.proxy_user_agents,
            )
        if getattr(request, "_disconnected", False):
            # The client left while the decision was awaited (a token store that waits):
            # Twisted has closed the body and would never fire notifyFinish().
            self._log_login(decision, mode, 499, started, CLIENT_LEFT, token_tag=token_tag)
            return
        if mode is Mode.REDIRECT:
            send_redirect(request, decision.homeserver)
            self._log_login(decision, mode, TEMPORARY_REDIRECT, started, token_tag=token_tag)
            return
        d = defer.ensureDeferred(
            self._proxy(request, decision, client_ip, scheme, started, token_tag=token_tag)
        )
        request.notifyFinish().addErrback(lambda _: d.cancel())
        d.addErrback(self._on_error, request)

    async def _proxy(
        self,
        request: Request,
        decision: Decision,
        client_ip: str,
        scheme: str,
        started: float,
        *,
        token_tag: str = "",
    ) -> None:
        hs = decision.homeserver
        assert request.content is not None
        request.content.seek(0)
        try:
            response = await self._upstream.request(
                hs,
                b"POST",
                request.uri,
                forward_headers(request.requestHeaders, client_ip=client_ip, scheme=scheme),
                request.content.read(),
            )
        except errors.MatrixError as e:
            respond_error(request, e)
            self._log_login(decision, Mode.PROXY, e.status, started, e.message, token_tag=token_tag)
            return
        except defer.CancelledError:
            # 499 as nginx logs it: the client closed the connection before the answer.
            self._log_login(decision, Mode.PROXY, 499, started, CLIENT_LEFT, token_tag=token_tag)
            raise
        for name, values in relay_headers(response.headers):
            request.responseHeaders.setRawHeaders(name, values)
        body = amend_login_body(response.status, response.body, hs.base_url)
        respond(request, response.status, body, content_type=None)
        self._log_login(decision, Mode.PROXY, response.status, started, token_tag=token_tag)

    # -- single sign-on (see sso.py) --------------------------------------------------------

    def _sso_redirect(self, request: Request, idp: str | None) -> None:
        """Send the browser to the homeserver serving ``idp``, with the portal's callback as
        the ``redirectUrl``."""
        query = request.uri.partition(b"?")[2]
        to = redirect_url_param(query)
        check_redirect_url(to)
        hs = self._config.homeservers[self._config.sso.homeserver_for(idp)]
        callback = callback_url(
            self._config.public_baseurl, self._signer, hs.name, to, self._wall_clock()
        )
        location = homeserver_redirect_location(hs.base_url, request.path, query, callback)
        request.setHeader(b"Location", location)
        request.setHeader(b"Cache-Control", b"no-store")
        respond(request, FOUND, b"", content_type=None)
        logger.info("sso redirect idp=%s homeserver=%s", idp or "-", hs.name)

    async def _sso_callback(self, request: Request) -> None:
        """The homeserver sends the browser here with a login token: record who issued it,
        then send the browser on to the client (or ask first, see ``sso.py``)."""
        try:
            callback = parse_callback(
                request.uri.partition(b"?")[2],
                self._signer,
                tuple(self._config.homeservers),
                self._wall_clock(),
            )
        except errors.MatrixError as e:
            self._metrics.sso_callback("refused")
            logger.info("sso callback refused: %s %s", e.status, e.errcode)
            raise
        recorded = await self._sso_tokens.remember(callback.login_token, callback.hs)
        target = add_login_token(callback.to, callback.login_token)
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        confirm = not whitelisted(callback.to, self._config.sso.client_whitelist)
        self._metrics.sso_callback("recorded" if recorded else "replayed")
        logger.info(
            "sso callback homeserver=%s token=%s%s%s",
            callback.hs,
            token_hash_for_logs(callback.login_token),
            " confirm=page" if confirm else "",
            "" if recorded else " already_recorded",
        )
        if confirm:
            body = confirmation_page(target, callback.to)
            respond(request, 200, body, content_type=b"text/html; charset=utf-8")
        else:
            request.setHeader(b"Location", target.encode())
            respond(request, FOUND, b"", content_type=None)

    def _log_login(
        self,
        decision: Decision,
        mode: Mode,
        status: int,
        started: float,
        problem: str = "",
        *,
        token_tag: str = "",
    ) -> None:
        seconds = self._clock() - started
        self._metrics.login(decision.homeserver.name, mode.value, status, seconds)
        logger.info(
            "login route=%s homeserver=%s mode=%s status=%d duration=%.1fms%s%s",
            decision.route,
            decision.homeserver.name,
            mode.value,
            status,
            seconds * 1000,
            f" token={token_tag}" if token_tag else "",
            f" problem={problem!r}" if problem else "",
        )


def _describe_request(request: Request) -> str:
    # The path only: the query string could carry an access token.
    return f"{request.method.decode('ascii', 'replace')} {request.path.decode('utf-8', 'replace')}"


def build_site(resource: PortalResource, max_body_size: int) -> PortalSite:
    site = PortalSite(resource)  # type: ignore[no-untyped-call]
    site.requestFactory = request_class(max_body_size)
    site.displayTracebacks = False
    return site
