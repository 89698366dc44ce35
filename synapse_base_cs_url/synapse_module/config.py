"""The module's configuration: parsed once at startup, every mistake named by its key.

``ModuleConfig.from_config`` raises ``ValueError`` whose message starts with the offending
key; ``module.BaseCsUrlModule.parse_config`` turns that into Synapse's ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Mapping

import attr

from synapse_base_cs_url.core import RuleSet, parse_rules
from synapse_base_cs_url.core.config_values import boolean, check_keys, prefixed, type_name
from synapse_base_cs_url.core.urls import validate_base_url
from synapse_base_cs_url.synapse_module.compute import ComputeHook
from synapse_base_cs_url.synapse_module.placement_config import PlacementSettings
from synapse_base_cs_url.synapse_module.selection import RESERVED_RULE_NAMES

ALLOWED_KEYS = ("base_cs_url", "well_known", "rules", "compute", "on_register", "placement")


def parse_url_rules(raw: object) -> RuleSet[str]:
    """``rules``: parsed by the shared routing core, targets validated like ``base_cs_url``."""
    rules = parse_rules(raw, key="rules", parse_target=validate_base_url, target_key="base_cs_url")
    # Metrics label responses by rule name; a rule called "default" would be indistinguishable
    # from the fallback.
    for index, rule in enumerate(rules):
        if rule.name in RESERVED_RULE_NAMES:
            raise ValueError(
                f"rules[{index}].name: {rule.name!r} is reserved (it names the "
                f"{'fallback URL' if rule.name == 'default' else 'compute function'} in "
                f"metrics); choose another name"
            )
    return rules


def parse_compute(raw: object) -> ComputeHook | None:
    """``compute``: imported now, so a typo stops startup rather than every login."""
    if raw is None:
        return None
    return prefixed("compute", ComputeHook.from_path, raw)


@attr.s(auto_attribs=True, frozen=True, slots=True)
class ModuleConfig:
    """What the admin wrote under ``config:`` for ``synapse_base_cs_url.BaseCsUrlModule``."""

    # The fallback URL; None means "Synapse's public_baseurl", resolved at startup.
    base_cs_url: str | None = None
    # Also set well_known.m.homeserver.base_url, which is what real clients act on.
    well_known: bool = True
    # Tried in order after compute; the first match picks the URL.
    rules: RuleSet[str] = attr.ib(factory=RuleSet)
    # Admin-supplied function tried before the rules.
    compute: ComputeHook | None = None
    # Also amend successful /register responses that log the new user in.
    on_register: bool = False
    # Ask the portal before an account or an address is created; answer its lookups.
    placement: PlacementSettings | None = None

    @staticmethod
    def from_config(raw: object) -> ModuleConfig:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ValueError(f"config: must be a mapping, not {type_name(raw)}")
        check_keys(raw, ALLOWED_KEYS)
        base_cs_url = None
        if raw.get("base_cs_url") is not None:
            base_cs_url = prefixed("base_cs_url", validate_base_url, raw["base_cs_url"])
        return ModuleConfig(
            base_cs_url=base_cs_url,
            well_known=boolean(raw.get("well_known", True), "well_known"),
            rules=parse_url_rules(raw.get("rules")),
            compute=parse_compute(raw.get("compute")),
            on_register=boolean(raw.get("on_register", False), "on_register"),
            placement=PlacementSettings.from_config(raw.get("placement")),
        )
