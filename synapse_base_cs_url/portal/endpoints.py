"""The portal's URL map: every path it serves, with which methods, and which handler answers.

The web layer (``web/``) only dispatches; what is served lives here, next to the wiring that
builds the handlers (``wiring.py``), so that ``web/`` depends on nothing above it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from twisted.web import server
from twisted.web.resource import Resource

from synapse_base_cs_url.core.placement_protocol import ASK_PATH
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.account_steps import STEPS
from synapse_base_cs_url.portal.client_paths import (
    CLIENT_API_PATH,
    INFO_PATH,
    INTERNAL_INFO_PATH,
    LOGIN_PATH,
    SSO_REDIRECT_PATH,
    VERSIONS_PATH,
)
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.discovery import Discovery, well_known_client
from synapse_base_cs_url.portal.gateway.auth_request import AUTH_REQUEST_PATH, AuthRequestEndpoint
from synapse_base_cs_url.portal.gateway.gateway import Gateway
from synapse_base_cs_url.portal.identity_lookup import IdentityLookup
from synapse_base_cs_url.portal.login.login_handler import LoginHandler
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.placement_asks import PlacementAsks
from synapse_base_cs_url.portal.reactor import PortalReactor
from synapse_base_cs_url.portal.registration import AccountRedirects
from synapse_base_cs_url.portal.sso.callback import CALLBACK_PATH
from synapse_base_cs_url.portal.sso.sign_in import SIGN_IN_PATH
from synapse_base_cs_url.portal.sso.sso_handler import SsoHandler
from synapse_base_cs_url.portal.upstream.health import HomeserverHealth
from synapse_base_cs_url.portal.web.request import PortalRequest
from synapse_base_cs_url.portal.web.url_table import ANY_METHOD, READ, Endpoint, UrlTable

WELL_KNOWN_PATH = b"/.well-known/matrix/client"
HEALTH_PATH = b"/health"
READY_PATH = b"/ready"
METRICS_PATH = b"/metrics"
#: What this server is, for tools (``check``): a homeserver does not answer it.
PORTAL_INFO_PATH = b"/_synapse_base_cs_url/portal"
SSO_OFF = (
    "Single sign-on is not served by this portal: with several portal processes it needs an "
    "'sso' section with sso.signing_key_file (and state.backend: redis) in portal.yaml"
)


def portal_endpoints(
    config: PortalConfig,
    login: LoginHandler,
    sso: SsoHandler,
    discovery: Discovery,
    *,
    metrics: PortalMetrics,
    ready: Callable[[], Awaitable[str | None]],
    gateway: Gateway | None = None,
    auth_request: AuthRequestEndpoint | None = None,
    account_steps: AccountRedirects | None = None,
    placement_asks: PlacementAsks | None = None,
    identity_lookup: IdentityLookup | None = None,
    homeserver_health: HomeserverHealth | None = None,
) -> UrlTable:
    """Every path the portal serves, and with which methods. ``ready`` says why the portal
    is not ready for traffic (``None``: it is)."""
    well_known = well_known_client(config.public_baseurl)
    info = {
        "portal": "synapse-base-cs-url",
        "mode": config.mode.value,
        "client_api": config.client_api.value,
    }

    def login_post(request: PortalRequest, _: re.Match[bytes]) -> Coroutine[Any, Any, None] | None:
        return login.handle(request)

    async def login_flows(request: PortalRequest, _: re.Match[bytes]) -> None:
        request.respond(200, await discovery.login_flows(request.path_bytes))

    async def versions(request: PortalRequest, _: re.Match[bytes]) -> None:
        request.respond(200, await discovery.versions(request.path_bytes))

    def well_known_doc(request: PortalRequest, _: re.Match[bytes]) -> None:
        request.respond(200, well_known)

    def portal_info(request: PortalRequest, _: re.Match[bytes]) -> None:
        # Which homeservers nothing waits for now (each process's own view).
        down = sorted(homeserver_health.down) if homeserver_health is not None else []
        request.respond(200, json.dumps({**info, "homeservers_down": down}).encode())

    def health(request: PortalRequest, _: re.Match[bytes]) -> None:
        request.respond(200, b"OK", content_type=b"text/plain; charset=utf-8")

    async def readiness(request: PortalRequest, _: re.Match[bytes]) -> None:
        problem = await ready()
        text = b"OK" if problem is None else problem.encode()
        request.respond(200 if problem is None else 503, text, b"text/plain; charset=utf-8")

    def metrics_page(request: PortalRequest, _: re.Match[bytes]) -> None:
        request.respond(200, metrics.render(), metrics.content_type.encode())

    routes = [
        Endpoint.of(LOGIN_PATH, [b"POST"], login_post),
        Endpoint.of(LOGIN_PATH, READ, login_flows),
        Endpoint.of(VERSIONS_PATH, READ, versions),
        Endpoint.of(WELL_KNOWN_PATH, READ, well_known_doc),
        Endpoint.of(HEALTH_PATH, READ, health),
        Endpoint.of(PORTAL_INFO_PATH, READ, portal_info),
        Endpoint.of(READY_PATH, READ, readiness),
    ]
    if config.sso_served:
        routes += [
            Endpoint.of(SSO_REDIRECT_PATH, READ, sso.redirect),
            # GET only, not HEAD: the callback records the token.
            Endpoint.of(CALLBACK_PATH, [b"GET"], sso.callback),
            Endpoint.of(SIGN_IN_PATH, [b"POST"], sso.sign_in),
        ]
    else:

        def sso_off(request: PortalRequest, _: re.Match[bytes]) -> None:
            raise errors.MatrixError(404, errors.UNRECOGNIZED, SSO_OFF)

        routes += [Endpoint.of(SSO_REDIRECT_PATH, READ, sso_off)]
    if config.metrics.public:
        routes.append(Endpoint.of(METRICS_PATH, [b"GET"], metrics_page))
    if auth_request is not None:
        decide = auth_request.decide
        routes.append(Endpoint.of(AUTH_REQUEST_PATH, READ, lambda request, _: decide(request)))
    if placement_asks is not None:
        ask = placement_asks.ask
        routes.append(Endpoint.of(ASK_PATH.encode(), [b"POST"], lambda request, _: ask(request)))
    if identity_lookup is not None:
        lookup, internal = identity_lookup.info, identity_lookup.internal_info
        routes += [
            Endpoint.of(INFO_PATH, READ, lambda request, _: lookup(request)),
            Endpoint.of(INTERNAL_INFO_PATH, READ, lambda request, _: internal(request)),
        ]
    if account_steps is not None:
        routes += [
            Endpoint.of(step.path, list(step.methods), account_steps.handler_for(step))
            for step in STEPS
        ]
    fallback = None
    if gateway is not None:
        handle = gateway.handle
        fallback = Endpoint.of(CLIENT_API_PATH, ANY_METHOD, lambda request, _: handle(request))
    return UrlTable(routes, fallback)


class _MetricsPage(Resource):
    """The metrics listener's one page: ``GET /metrics``; anything else is 404 (another
    path) or 405 (another method), in plain text. Nothing of the portal's own is reachable
    here, so a listener meant for the scraper serves nothing else."""

    isLeaf = True

    def __init__(self, metrics: PortalMetrics) -> None:
        Resource.__init__(self)  # type: ignore[no-untyped-call]
        self._metrics = metrics

    def render(self, request: server.Request) -> bytes:
        headers = request.responseHeaders
        if request.path != METRICS_PATH:
            request.setResponseCode(404)
            headers.setRawHeaders(b"Content-Type", [b"text/plain; charset=utf-8"])
            return b"Not found: this listener serves only GET /metrics\n"
        if request.method != b"GET":
            request.setResponseCode(405)
            headers.setRawHeaders(b"Allow", [b"GET"])
            headers.setRawHeaders(b"Content-Type", [b"text/plain; charset=utf-8"])
            return b"Method not allowed: this listener serves only GET /metrics\n"
        headers.setRawHeaders(b"Content-Type", [self._metrics.content_type.encode()])
        return self._metrics.render()


class _MetricsSite(server.Site):
    """No access log (a scrape every few seconds would fill the portal's log)."""

    noisy = False

    def log(self, request: object) -> None:
        pass


def metrics_site(
    metrics: PortalMetrics, reactor: PortalReactor, idle_timeout: float
) -> server.Site:
    """The site of ``metrics: {host, port}``: a plain Twisted site, not a ``PortalSite``,
    whose connections would count in the public listener's connection metrics and cap."""
    make: Any = _MetricsSite
    site: server.Site = make(_MetricsPage(metrics), timeout=idle_timeout, reactor=reactor)
    site.displayTracebacks = False
    return site
