"""The portal's web resource: one leaf that looks each request up in the URL table and runs
its handler, answering errors as Matrix JSON. The URL table can be replaced while the portal
runs (a reload): requests already dispatched finish with the one they got."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import Resource

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.web.request import PortalRequest
from synapse_base_cs_url.portal.web.url_table import UrlTable

logger = logging.getLogger("synapse_base_cs_url.portal")


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
                sink = request.body_sink
                if sink is not None:
                    pending: Coroutine[Any, Any, None] | None = sink.respond()
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
