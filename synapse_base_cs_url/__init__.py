"""MSC1730 for Synapse: a ``base_cs_url`` in every login response, and a login portal.

``BaseCsUrlModule`` is imported lazily so that the pure core and the portal can be used
without Synapse installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from synapse_base_cs_url.synapse_module.module import BaseCsUrlModule

__all__ = ["BaseCsUrlModule", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "BaseCsUrlModule":
        from synapse_base_cs_url.synapse_module.module import BaseCsUrlModule

        return BaseCsUrlModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
