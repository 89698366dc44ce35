"""The portal's web resource: one leaf that looks each request up in the URL table and runs
its handler, answering errors as Matrix JSON. The URL table can be replaced while the portal
runs (a reload): requests already dispatched finish with the one they got."""

from __future__ import annotations

import logging
import re
from collections.abc import Coroutine
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import Resource

from synapse_base_cs_url.core.redact import redact
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.web.request import PortalRequest
from synapse_base_cs_url.portal.web.url_table import UrlTable

logger = logging.getLogger("synapse_base_cs_url.portal")

#: A request target the portal can pass on: printable ASCII only, as Twisted's HTTP client
#: (and HTTP itself) requires. Twisted's server accepts more (bytes 0x7F-0xFF): such a
#: request is refused here, before any handler, rather than fail half-way to a homeserver.
FORWARDABLE_TARGET = re.compile(rb"\A[\x21-\x7e]+\Z")


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
            if not FORWARDABLE_TARGET.match(request.uri_bytes):
                raise errors.MatrixError(
                    400,
                    errors.UNRECOGNIZED,
                    "The request target has bytes that must be percent-encoded",
                )
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
        except errors.Answered as answered:
            request.respond(answered.status, answered.body())
        except Exception:
            logger.error(
                "unexpected error handling %s: %s",
                request.describe(),
                redact(Failure().getTraceback()),  # type: ignore[no-untyped-call]
            )
            request.respond_error(errors.internal_error())
        return server.NOT_DONE_YET

    def _on_error(self, failure: Failure, request: PortalRequest) -> None:
        error = failure.value
        if isinstance(error, errors.MatrixError):
            request.respond_error(error)
        elif isinstance(error, errors.Answered):
            request.respond(error.status, error.body())
        elif isinstance(error, defer.CancelledError):
            pass  # the client went away
        else:
            # An exception's text may quote the request's URI (and its access_token).
            logger.error(
                "unexpected error handling %s: %s",
                request.describe(),
                redact(failure.getTraceback()),
            )
            request.respond_error(errors.internal_error())
