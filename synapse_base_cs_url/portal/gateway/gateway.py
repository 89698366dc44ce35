"""The client-server gateway: the rest of the client-server API for clients that stay at the
portal's address after logging in (``client_api: proxy``).

A request with a body starts its exchange as soon as its headers are in (:meth:`begin`: the
exchange is the body's sink), so the body streams to the homeserver while it arrives; the
answer is written once Twisted hands the complete request to the resource (:meth:`handle`).
A request without a body, or a registration or refresh (routed by what its body says),
starts there.
"""

from __future__ import annotations

from synapse_base_cs_url.portal.client_paths import routed_by_body
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.gateway.destination import Destinations
from synapse_base_cs_url.portal.gateway.exchange import Exchange, Forwarding
from synapse_base_cs_url.portal.gateway.upload_stream import UploadStream
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.upstream.client import Upstream
from synapse_base_cs_url.portal.web.request import PortalRequest


class Gateway:
    def __init__(
        self,
        config: PortalConfig,
        upstream: Upstream,
        destinations: Destinations,
        metrics: PortalMetrics,
        clock: Clock,
    ) -> None:
        self.destinations = destinations
        self._forwarding = Forwarding(
            settings=config.gateway,
            upstream=upstream,
            destinations=destinations,
            metrics=metrics,
            clock=clock,
        )

    def streams(self, method: bytes, path: bytes) -> bool:
        """Whether a request's body goes to the homeserver as it arrives (everything but a
        registration or a token refresh, which are routed by their body)."""
        return not routed_by_body(method, path)

    def begin(
        self, request: PortalRequest, method: bytes, uri: bytes, length: int | None
    ) -> Exchange:
        """Headers are in and a body follows: start the exchange now. It owns the upload
        stream its body goes through."""
        limit = self._forwarding.settings.max_upload_size
        stream = UploadStream(request.client_transport(), length, limit)
        return Exchange(self._forwarding, request, method, uri, stream)

    async def handle(self, request: PortalRequest) -> None:
        """The complete request is in, its body kept (a request whose body streamed is
        answered by its own exchange, the body's sink): answer it."""
        received = request.body()  # (413 if it was too large)
        body = received if request.method_bytes == b"POST" else None
        exchange = Exchange(
            self._forwarding, request, request.method_bytes, request.uri_bytes, body
        )
        await exchange.respond()
