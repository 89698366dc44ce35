"""A Synapse module that makes synapse-base-cs-url's response writing raise.

Loaded next to ``BaseCsUrlModule`` in a real Synapse to prove the module fails open: the
login must still succeed, unchanged, with the error logged.
"""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi

from synapse_base_cs_url.synapse_module import module


class BreakUrlComputation:
    def __init__(self, config: dict[str, Any], api: ModuleApi) -> None:
        def broken(*args: Any, **kwargs: Any) -> str:
            raise RuntimeError("injected fault in URL computation")

        # Every hook (static, rules, compute) writes its answer with this name.
        module.with_base_url = broken  # type: ignore[assignment]
