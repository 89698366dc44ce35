"""The one name for a decoded JSON object, as Synapse spells it."""

from __future__ import annotations

from typing import Any, TypeAlias

JsonDict: TypeAlias = dict[str, Any]
