"""A Synapse module that reshapes ``LoginRestServlet.on_POST`` the way a future Synapse might.

Listed before ``BaseCsUrlModule`` so that the module's startup check sees the change and
must refuse to start.
"""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi
from synapse.rest.client.login import LoginRestServlet


class ReshapeLoginServlet:
    def __init__(self, config: dict[str, Any], api: ModuleApi) -> None:
        def on_POST(self: Any, request: Any, extra: Any) -> tuple[int, dict[str, Any]]:
            return 200, {}

        LoginRestServlet.on_POST = on_POST  # type: ignore[assignment,method-assign]
