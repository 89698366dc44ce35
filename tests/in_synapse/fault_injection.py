"""A Synapse module that makes synapse-base-cs-url's URL computation raise.

Loaded next to ``BaseCsUrlModule`` in a real Synapse to prove the module fails open: the
login must still succeed, unchanged, with the error logged.
"""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi

from synapse_base_cs_url.synapse_module.module import BaseCsUrlModule


class BreakUrlComputation:
    def __init__(self, config: dict[str, Any], api: ModuleApi) -> None:
        async def broken(*args: Any, **kwargs: Any) -> str:
            raise RuntimeError("injected fault in URL computation")

        BaseCsUrlModule.choose_base_url = broken  # type: ignore[method-assign]
