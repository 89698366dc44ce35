"""A request body read as a JSON object, as Synapse reads one (for every handler that reads
one strictly: a login, a homeserver's ask)."""

from __future__ import annotations

import json
from typing import Any

from synapse_base_cs_url.portal import errors


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a :class:`MatrixError` as Synapse would answer.

    As Synapse's ``parse_json_value_from_request``: UTF-8 only (``json.loads`` on bytes
    would also take UTF-16, UTF-32 and a UTF-8 BOM), and no ``NaN`` / ``Infinity``.
    """
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise errors.not_json() from None
    if not isinstance(body, dict):
        raise errors.bad_json("Content must be a JSON object.")
    return body


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")
