"""``synapse-base-cs-url diff``: how many users each target gets under two configs, and
which users move, before the new config is deployed."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator

import attr

from synapse_base_cs_url.core.context import localpart_of
from synapse_base_cs_url.core.rules import RuleSet
from synapse_base_cs_url.tools.configs import RoutingConfig
from synapse_base_cs_url.tools.explain import login_body

#: What a user gets from a round-robin pool: no one target, so never counted as a move.
ROTATES = "(round robin: {members})"


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Move:
    user_id: str
    before: str
    after: str


@attr.s(auto_attribs=True, slots=True)
class DiffResult:
    before: collections.Counter[str] = attr.Factory(collections.Counter)
    after: collections.Counter[str] = attr.Factory(collections.Counter)
    users: int = 0
    moved: int = 0
    skipped: list[str] = attr.Factory(list)
    """Lines that name nobody (not user ids; for a portal, not a localpart or an address
    either), as given."""


class Router:
    """One config's answer per user id, as at run time, with round-robin pools shown as
    their rotation rather than as whichever member this call happens to take."""

    def __init__(self, config: RoutingConfig, login_type: str, client_ip: str | None) -> None:
        self._config = config
        self._login_type = login_type
        self._client_ip = client_ip
        self._rotating = _rotating_rules(config.rules)

    def accepts(self, who: str) -> bool:
        """A module routes user ids; a portal also bare localparts, e-mail addresses and
        phone numbers, as its users type them."""
        if localpart_of(who):
            return True
        return self._config.portal is not None and not any(c.isspace() for c in who)

    def target(self, who: str) -> str:
        body = login_body(who, self._login_type)
        user_id = who if localpart_of(who) else None
        ctx = self._config.context(body, self._client_ip, user_id)
        by_name = self._config.by_server_name(ctx)
        if by_name is not None:
            return by_name.target
        for rule in self._config.rules:
            if rule.match.matches(ctx):
                if rule.name in self._rotating:
                    return self._rotating[rule.name]
                return rule.select(ctx).target
        return self._config.default


def _rotating_rules(rules: RuleSet[str]) -> dict[str, str]:
    """Rule name -> label, for rules whose pool picks by rotation for a known user."""
    labels = {}
    for rule in rules:
        if rule.pool is not None and rule.pool.strategy.value == "round_robin":
            labels[rule.name] = ROTATES.format(members=", ".join(rule.pool.members))
    return labels


def diff(
    old: Router, new: Router, user_ids: Iterable[str], on_move: list[Move] | None = None
) -> DiffResult:
    """Route every user id with both; ``on_move`` collects who moves (if given)."""
    result = DiffResult()
    for line in user_ids:
        user_id = line.strip()
        if not user_id:
            continue
        if not (old.accepts(user_id) and new.accepts(user_id)):
            result.skipped.append(user_id)
            continue
        before, after = old.target(user_id), new.target(user_id)
        result.users += 1
        result.before[before] += 1
        result.after[after] += 1
        if before != after:
            result.moved += 1
            if on_move is not None:
                on_move.append(Move(user_id, before, after))
    return result


def report(
    result: DiffResult, old: RoutingConfig, new: RoutingConfig, moves: list[Move], show: int
) -> Iterator[str]:
    """The lines ``diff`` prints."""
    yield f"{result.users} users; {old.path} -> {new.path}"
    targets = sorted(set(result.before) | set(result.after))
    width = max((len(old.describe(t)) for t in targets), default=10)
    yield f"  {'target':{width}s}  {'before':>9s}  {'after':>9s}  {'change':>9s}"
    for target in targets:
        b, a = result.before[target], result.after[target]
        label = new.describe(target) if target in result.after else old.describe(target)
        yield f"  {label:{width}s}  {b:9d}  {a:9d}  {a - b:+9d}"
    share = result.moved / result.users if result.users else 0.0
    directory = new.portal is not None and new.portal.directory.enabled
    if directory and result.moved:
        yield (
            f"{result.moved} would move by the routes ({share:.1%}), but NEW has the account "
            "directory on: existing accounts are found where they live and stay; only new "
            "accounts by these names would now be placed as shown"
        )
    else:
        yield f"{result.moved} users move ({share:.1%})"
    for move in moves[:show]:
        yield f"  {move.user_id}: {old.describe(move.before)} -> {new.describe(move.after)}"
    if len(moves) > show:
        yield f"  ... and {len(moves) - show} more (--show N, or --moves FILE for all)"
    if result.skipped:
        yield (
            f"{len(result.skipped)} lines skipped: not user ids (@localpart:server)"
            f", e.g. {result.skipped[0]!r}"
        )
