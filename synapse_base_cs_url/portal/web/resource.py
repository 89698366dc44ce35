"""The portal's web resource: one leaf that looks each request up in the route table and
runs its handler, answering errors as Matrix JSON. The route table can be replaced while
the portal runs (a reload): requests already dispatched finish with the one they got."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import Resource

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.discovery import Discovery, well_known_client
from synapse_base_cs_url.portal.gateway.auth_request import AUTH_REQUEST_PATH, AuthRequestEndpoint
from synapse_base_cs_url.portal.gateway.handler import CLIENT_API, Gateway
from synapse_base_cs_url.portal.login.login_handler import LoginHandler
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.sso.callback import CALLBACK_PATH
from synapse_base_cs_url.portal.sso.sso_handler import SSO_REDIRECT_PATH, SsoHandler
from synapse_base_cs_url.portal.web.request import PortalRequest
from synapse_base_cs_url.portal.web.url_table import ANY_METHOD, READ, Endpoint, UrlTable

logger = logging.getLogger("synapse_base_cs_url.portal")

LOGIN_PATH = re.compile(rb"/_matrix/client/(?:api/v1|r0|v3)/login")
VERSIONS_PATH = b"/_matrix/client/versions"
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
) -> UrlTable:
    """Every path the portal serves, and with which methods. ``ready`` says why the portal
    is not ready for traffic (``None``: it is)."""
    well_known = well_known_client(config.public_baseurl)
    info = json.dumps(
        {
            "portal": "synapse-base-cs-url",
            "mode": config.mode.value,
            "client_api": config.client_api.value,
        }
    ).encode()

    def login_post(request: PortalRequest, _: re.Match[bytes]) -> Coroutine[Any, Any, None] | None:
        return login.handle(request)

    async def login_flows(request: PortalRequest, _: re.Match[bytes]) -> None:
        request.respond(200, await discovery.login_flows(request.path_bytes))

    async def versions(request: PortalRequest, _: re.Match[bytes]) -> None:
        request.respond(200, await discovery.versions(request.path_bytes))

    def well_known_doc(request: PortalRequest, _: re.Match[bytes]) -> None:
        request.respond(200, well_known)

    def portal_info(request: PortalRequest, _: re.Match[bytes]) -> None:
        request.respond(200, info)

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
        ]
    else:

        def sso_off(request: PortalRequest, _: re.Match[bytes]) -> None:
            raise errors.MatrixError(404, errors.UNRECOGNIZED, SSO_OFF)

        routes += [Endpoint.of(SSO_REDIRECT_PATH, READ, sso_off)]
    if config.metrics:
        routes.append(Endpoint.of(METRICS_PATH, [b"GET"], metrics_page))
    if auth_request is not None:
        decide = auth_request.decide
        routes.append(Endpoint.of(AUTH_REQUEST_PATH, READ, lambda request, _: decide(request)))
    fallback = None
    if gateway is not None:
        handle = gateway.handle
        fallback = Endpoint.of(CLIENT_API, ANY_METHOD, lambda request, _: handle(request))
    return UrlTable(routes, fallback)


class PortalResource(Resource):
    """Dispatches by the route table; no handler error ever reaches the client as a 500
    with a traceback or as a hang."""

    isLeaf = True

    def __init__(self, routes: UrlTable) -> None:
        Resource.__init__(self)  # type: ignore[no-untyped-call]
        self.routes = routes
        """Replaced as a whole on reload."""

    def render(self, request: PortalRequest) -> int:
        request.set_cors_headers()
        try:
            if request.method_bytes == b"OPTIONS":
                # As Synapse answers every CORS preflight: 204 with the CORS headers.
                request.respond(204, b"", content_type=None)
            else:
                handler, match = self.routes.find(request.method_bytes, request.path_bytes)
                pending = handler(request, match)
                if pending is not None:
                    defer.ensureDeferred(pending).addErrback(self._on_error, request)
        except errors.MatrixError as e:
            request.respond_error(e)
        except Exception:
            logger.exception("unexpected error handling %s", request.describe())
            request.respond_error(errors.internal_error())
        return server.NOT_DONE_YET

    def _on_error(self, failure: Failure, request: PortalRequest) -> None:
        error = failure.value
        if isinstance(error, errors.MatrixError):
            request.respond_error(error)
        elif isinstance(error, defer.CancelledError):
            pass  # the client went away
        else:
            logger.error(
                "unexpected error handling %s: %s", request.describe(), failure.getTraceback()
            )
            request.respond_error(errors.internal_error())
