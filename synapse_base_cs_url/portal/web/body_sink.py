"""What a request body can be handed to as it arrives, instead of being kept in memory.

Twisted hands a request to its resource only once the whole body is in. The client-server
gateway cannot wait that long for an upload: it passes the body on while it arrives. The web
layer knows nothing of the gateway; it offers this contract, and a hook that decides per
request (:data:`~synapse_base_cs_url.portal.web.request.StreamBodies`) whether a body goes to
a sink. The gateway's ``Exchange`` is the sink that implements it.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol


class BodySink(Protocol):
    """Takes one request's body as the client sends it."""

    def feed(self, data: bytes) -> None:
        """The next part of the body."""
        ...

    def finish(self) -> None:
        """The whole body has arrived."""
        ...

    def abandon(self) -> None:
        """The client went away: nothing more will come, and nobody reads the answer."""
        ...

    def respond(self) -> Coroutine[Any, Any, None]:
        """Answer the request once it is all in. The sink started its exchange, so the sink
        answers it, whatever the URL table says by then (a reload may have replaced it)."""
        ...
