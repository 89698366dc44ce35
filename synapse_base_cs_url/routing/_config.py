"""Small helpers for turning YAML-shaped values into precise ``ValueError`` messages."""

from __future__ import annotations

from collections.abc import Sequence


def type_name(value: object) -> str:
    """Name a value's type the way a YAML author would recognise it."""
    if value is None:
        return "null"
    return type(value).__name__


def as_list(value: object) -> Sequence[object] | None:
    """Return ``value`` if it is a YAML list (not a string), else ``None``."""
    if isinstance(value, (list, tuple)):
        return value
    return None


def strings(value: object, path: str, what: str) -> tuple[str, ...]:
    """Accept a string or a non-empty list of strings; return them as a tuple."""
    if isinstance(value, str):
        return (value,)
    items = as_list(value)
    if items is None:
        raise ValueError(f"{path}: must be {what} or a list of them, not {type_name(value)}")
    if not items:
        raise ValueError(f"{path}: must not be an empty list (it could never match)")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ValueError(f"{path}[{i}]: must be {what}, not {type_name(item)}")
    return tuple(str(item) for item in items)
