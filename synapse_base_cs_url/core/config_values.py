"""Turning YAML-shaped values into typed ones, or into ``ValueError`` messages that start
with the config path of the offending value and say what is allowed instead.

The one set of helpers for every config this package reads: the module's ``config:`` block,
``portal.yaml``, and the rules both contain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def read_yaml(path: str | Path) -> object:
    """A YAML file's content; a file that cannot be read or parsed is a ``ValueError``
    naming it, like every other config mistake."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{path}: cannot read the config file: {e.strerror or e}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = " ".join(str(e).split())  # PyYAML's message spans lines; keep errors on one
        raise ValueError(f"{path}: not valid YAML: {where}") from None


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


def check_keys(raw: Mapping[object, object], allowed: Sequence[str], path: str = "") -> None:
    """Refuse a key outside ``allowed``; ``path`` (if any) prefixes the message."""
    for key in raw:
        if key not in allowed:
            where = f"{path}: " if path else ""
            raise ValueError(
                f"{where}unknown key {key!r}; allowed keys: {', '.join(sorted(allowed))}"
            )


def section(raw: object, path: str, allowed: Sequence[str]) -> Mapping[Any, object]:
    """A config section ``path``: a mapping whose keys are all among ``allowed``."""
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"{path}: must be a mapping (keys: {', '.join(allowed)}), not {type_name(raw)}"
        )
    check_keys(raw, allowed, path)
    return raw


def required(raw: Mapping[object, object], key: str, path: str = "") -> object:
    """``raw[key]``, which must be present and not null."""
    if raw.get(key) is None:
        raise ValueError(f"{path}{key}: required")
    return raw[key]


def prefixed(path: str, parse: Callable[[object], T], value: object) -> T:
    """``parse(value)``, with ``path`` in front of the message of any ``ValueError``."""
    try:
        return parse(value)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{path}: must be true or false, not {value!r}")
    return value


def positive_int(value: object, path: str, what: str = "whole number") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{path}: must be a positive {what}, not {value!r}")
    return value


def _finite(value: object) -> float | None:
    """``value`` as a finite float; ``None`` for anything else (a bool, a string, ``.inf``
    or ``.nan``, an int too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def seconds(value: object, path: str) -> float:
    """A finite number: ``.inf`` as a timeout would never fire (a hang), ``.nan`` compares
    false with everything."""
    number = _finite(value)
    if number is None:
        raise ValueError(f"{path}: must be a number of seconds, not {value!r}")
    return number


def non_negative_seconds(value: object, path: str) -> float:
    number = seconds(value, path)
    if number < 0:
        raise ValueError(f"{path}: must not be negative, not {value!r}")
    return number


def positive_rate(value: object, path: str) -> float:
    """A rate (how many a second): a finite number above 0."""
    number = _finite(value)
    if number is None or number <= 0:
        raise ValueError(f"{path}: must be a number above 0 (how many a second), not {value!r}")
    return number


def positive_seconds(value: object, path: str) -> float:
    number = seconds(value, path)
    if number <= 0:
        raise ValueError(f"{path}: must be more than 0 seconds, not {value!r}")
    return number
