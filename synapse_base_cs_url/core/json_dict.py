"""The one name for a decoded JSON object, as Synapse spells it, and the one way the package
reads a JSON object from bytes it did not write (a homeserver's answer, a client's body)."""

from __future__ import annotations

import json
from typing import Any, TypeAlias

JsonDict: TypeAlias = dict[str, Any]


def json_object(raw: bytes) -> JsonDict | None:
    """The JSON object ``raw`` holds; ``None`` for anything else: not JSON, not an object,
    or nested past Python's recursion limit (which ``json`` raises as ``RecursionError``,
    and which must never become a 500)."""
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None
