"""Build a :class:`RuleSet` from plain config (as loaded from YAML).

Shared by the Synapse module (``rules`` / ``base_cs_url``) and the portal (``routes`` /
``homeserver``), so both report mistakes the same way: every ``ValueError`` starts with the
config path of the offending value and says what is allowed instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from synapse_base_cs_url.core.config_values import as_list, type_name
from synapse_base_cs_url.core.matchers import parse_match
from synapse_base_cs_url.core.pools import STRATEGY_NAMES, Pool, Strategy
from synapse_base_cs_url.core.rules import Rule, RuleSet, default_rule_name

T = TypeVar("T")

MATCH_KEY = "match"
NAME_KEY = "name"
STRATEGY_KEY = "strategy"


def parse_rules(
    raw: object,
    *,
    key: str,
    parse_target: Callable[[object], T],
    target_key: str,
    pool_key: str = "pool",
) -> RuleSet[T]:
    """Parse a list of rule mappings; ``None`` gives an empty rule set.

    ``key`` names the list in error messages; ``target_key`` / ``pool_key`` are the keys for a
    single target or a pool of them. ``parse_target`` validates one target and raises
    ``ValueError`` saying what is wrong; that message is prefixed with the target's path.
    """
    if raw is None:
        return RuleSet()
    items = as_list(raw)
    if items is None:
        raise ValueError(f"{key}: must be a list of rules, not {type_name(raw)}")

    allowed_keys = sorted({MATCH_KEY, NAME_KEY, STRATEGY_KEY, target_key, pool_key})
    rules: list[Rule[T]] = []
    first_index_of: dict[str, int] = {}
    for index, item in enumerate(items):
        path = f"{key}[{index}]"
        rule = _parse_rule(
            item,
            index=index,
            path=path,
            parse_target=parse_target,
            target_key=target_key,
            pool_key=pool_key,
            allowed_keys=allowed_keys,
        )
        if rule.name in first_index_of:
            first = f"{key}[{first_index_of[rule.name]}]"
            if isinstance(item, Mapping) and NAME_KEY in item:
                raise ValueError(
                    f"{path}.{NAME_KEY}: duplicate rule name {rule.name!r}; "
                    f"names must be unique (already used by {first})"
                )
            raise ValueError(
                f"{path}: this unnamed rule's default name {rule.name!r} is already used by "
                f"{first}; give one of them a different name"
            )
        first_index_of[rule.name] = index
        rules.append(rule)
    return RuleSet(tuple(rules))


def _parse_rule(
    item: object,
    *,
    index: int,
    path: str,
    parse_target: Callable[[object], T],
    target_key: str,
    pool_key: str,
    allowed_keys: list[str],
) -> Rule[T]:
    if not isinstance(item, Mapping):
        raise ValueError(f"{path}: must be a mapping, not {type_name(item)}")
    for k in item:
        if k not in allowed_keys:
            raise ValueError(f"{path}: unknown key {k!r}; allowed keys: {', '.join(allowed_keys)}")

    name = _parse_name(item.get(NAME_KEY), index, f"{path}.{NAME_KEY}")
    match = parse_match(item.get(MATCH_KEY), f"{path}.{MATCH_KEY}")

    if (target_key in item) == (pool_key in item):
        raise ValueError(f"{path}: give exactly one of {target_key!r} or {pool_key!r}")
    if target_key in item:
        if STRATEGY_KEY in item:
            raise ValueError(
                f"{path}.{STRATEGY_KEY}: only allowed with {pool_key!r}, not with {target_key!r}"
            )
        target = _call_parse_target(parse_target, item[target_key], f"{path}.{target_key}")
        return Rule(name=name, match=match, target=target)

    members = _parse_pool(item[pool_key], f"{path}.{pool_key}", parse_target)
    strategy = _parse_strategy(
        item.get(STRATEGY_KEY, Strategy.HASH.value), f"{path}.{STRATEGY_KEY}"
    )
    return Rule(name=name, match=match, pool=Pool(members, strategy))


def _parse_name(raw: object, index: int, path: str) -> str:
    if raw is None:
        return default_rule_name(index)
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"{path}: must be a non-empty string, not {raw!r}")
    return raw


def _call_parse_target(parse_target: Callable[[object], T], raw: object, path: str) -> T:
    try:
        target = parse_target(raw)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if target is None:
        raise ValueError(f"{path}: must not be empty")
    return target


def _parse_pool(raw: object, path: str, parse_target: Callable[[object], T]) -> tuple[T, ...]:
    items = as_list(raw)
    if items is None:
        raise ValueError(f"{path}: must be a non-empty list, not {type_name(raw)}")
    if not items:
        raise ValueError(f"{path}: must be a non-empty list")
    members: list[T] = []
    first_index_of: dict[str, int] = {}
    for i, raw_member in enumerate(items):
        member = _call_parse_target(parse_target, raw_member, f"{path}[{i}]")
        # Compared after parse_target, so spellings that normalise alike count as duplicates.
        as_str = str(member)
        if as_str in first_index_of:
            raise ValueError(
                f"{path}[{i}]: {raw_member!r} duplicates {path}[{first_index_of[as_str]}] "
                f"(both are {member!r}); pool members must be distinct"
            )
        first_index_of[as_str] = i
        members.append(member)
    return tuple(members)


def _parse_strategy(raw: object, path: str) -> Strategy:
    for strategy in Strategy:
        if raw == strategy.value:
            return strategy
    raise ValueError(f"{path}: unknown strategy {raw!r}; allowed: {', '.join(STRATEGY_NAMES)}")
