"""The module's configuration: parsed once at startup, every mistake named by its key.

``ModuleConfig.from_config`` raises ``ValueError`` whose message starts with the offending
key; ``module.BaseCsUrlModule.parse_config`` turns that into Synapse's ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attr

from synapse_base_cs_url.urls import validate_base_url

ALLOWED_KEYS = ("base_cs_url", "well_known")


def check_bool(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{key}: must be true or false, not {value!r}")
    return value


def check_known_keys(raw: Mapping[str, Any], allowed: tuple[str, ...], where: str = "") -> None:
    for key in raw:
        if key not in allowed:
            prefix = f"{where}: " if where else ""
            raise ValueError(
                f"{prefix}unknown key {key!r}; allowed keys: {', '.join(sorted(allowed))}"
            )


@attr.s(auto_attribs=True, frozen=True, slots=True)
class ModuleConfig:
    """What the admin wrote under ``config:`` for ``synapse_base_cs_url.BaseCsUrlModule``."""

    # The URL to hand out; None means "Synapse's public_baseurl", resolved at startup.
    base_cs_url: str | None = None
    # Also set well_known.m.homeserver.base_url, which is what real clients act on.
    well_known: bool = True

    @staticmethod
    def from_config(raw: object) -> ModuleConfig:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ValueError(f"config: must be a mapping, not {type(raw).__name__}")
        check_known_keys(raw, ALLOWED_KEYS)
        base_cs_url = None
        if raw.get("base_cs_url") is not None:
            try:
                base_cs_url = validate_base_url(raw["base_cs_url"])
            except ValueError as e:
                raise ValueError(f"base_cs_url: {e}") from None
        return ModuleConfig(
            base_cs_url=base_cs_url,
            well_known=check_bool(raw, "well_known", True),
        )
