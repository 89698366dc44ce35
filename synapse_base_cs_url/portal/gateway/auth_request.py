"""The decision endpoint for an nginx in front (``auth_request``): where should this request
go? nginx carries the traffic; the portal only answers with the upstream, in ``X-Upstream``,
which nginx proxies to (``auth_request_set`` + ``proxy_pass``).

Only the addresses in ``gateway.trusted_proxies`` may ask (it hands out routing, and a
resolution sends the token to every homeserver). The original request is described by
``X-Original-Method`` and ``X-Original-URI`` (and its own ``Authorization``); its client is
the first address of ``X-Forwarded-For``, read from the right, that is not a trusted proxy
(whatever a client wrote into that header itself is never taken). A request the
portal must answer itself (an unknown token, a limit) is sent back to the portal
(``X-Upstream`` is the portal's own address), which answers it with the proper Matrix error.
A decision made by token may be cached by nginx for ``gateway.decision_cache_ttl`` seconds
(``X-Accel-Expires``); the others are not cached.
"""

from __future__ import annotations

import ipaddress
import logging

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.gateway.destination import Destinations
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.web.request import PortalRequest, forwarded_client

logger = logging.getLogger("synapse_base_cs_url.portal")

AUTH_REQUEST_PATH = b"/_synapse_base_cs_url/route"
TOKEN_ROUTES = ("token", "resolved")


class AuthRequestEndpoint:
    def __init__(
        self, config: PortalConfig, destinations: Destinations, metrics: PortalMetrics
    ) -> None:
        self._config = config
        self._destinations = destinations
        self._metrics = metrics
        host = config.listen.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        self.portal_url = f"http://{host}:{config.listen.port}"

    def trusted(self, request: PortalRequest) -> bool:
        """By the TCP peer (never a forwarded header): is it one of the trusted proxies?"""
        peer = request.client_host()
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        return any(address in network for network in self._config.gateway.trusted_proxies)

    async def decide(self, request: PortalRequest) -> None:
        if not self.trusted(request):
            raise errors.MatrixError(
                403, errors.FORBIDDEN, "Only the portal's trusted proxies may ask"
            )
        uri = request.header(b"x-original-uri") or b"/"
        method = request.header(b"x-original-method") or b"GET"
        path, _, query = uri.partition(b"?")
        client_ip = forwarded_client(request, self._config.gateway.trusted_proxies)
        try:
            target = await self._destinations.route(
                method,
                path,
                query,
                authorization=request.header(b"authorization"),
                client_ip=client_ip,
            )
        except errors.MatrixError as e:
            # The portal itself will give the client the proper error.
            logger.info("route decision: %s %s, to the portal itself", e.status, e.errcode)
            upstream, expires = self.portal_url, 0.0
            self._metrics.route_decision("-", "portal")
        else:
            self._metrics.route_decision(target.homeserver.name, target.route)
            upstream = target.homeserver.proxy_url
            cacheable = target.route in TOKEN_ROUTES
            expires = self._config.gateway.decision_cache_ttl if cacheable else 0.0
        request.set_header(b"X-Upstream", upstream.encode())
        request.set_header(b"X-Accel-Expires", str(int(expires)).encode())
        request.respond(200, b"", content_type=None)
