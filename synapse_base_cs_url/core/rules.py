"""Rules and rule sets: an ordered list of "if the login looks like this, send it there"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

import attr

from synapse_base_cs_url.core.context import LoginContext
from synapse_base_cs_url.core.matchers import AllOf
from synapse_base_cs_url.core.pools import Pool

T = TypeVar("T")


def default_rule_name(index: int) -> str:
    """Name of the unnamed rule at 0-based ``index``: ``rule-1`` for the first one."""
    return f"rule-{index + 1}"


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Selection(Generic[T]):
    """The chosen target and the rule that chose it (for logs and metrics)."""

    target: T
    rule_name: str


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class Rule(Generic[T]):
    """When ``match`` matches, route to ``target``, or to a member of ``pool``.

    Exactly one of ``target`` and ``pool`` is set; targets themselves are never ``None``.
    """

    name: str
    match: AllOf = attr.ib(factory=AllOf)
    target: T | None = None
    pool: Pool[T] | None = None

    # Every Selection this rule can make, made once: its target's, or one per pool member.
    _selections: tuple[Selection[T], ...] = attr.ib(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if (self.target is None) == (self.pool is None):
            raise ValueError(f"rule {self.name!r}: give exactly one of target or pool")
        targets = self.pool.members if self.pool is not None else (self.target,)
        selections = tuple(Selection(target, self.name) for target in targets)
        object.__setattr__(self, "_selections", selections)

    def matches(self, ctx: LoginContext) -> bool:
        return self.match.matches(ctx)

    def select(self, ctx: LoginContext) -> Selection[T]:
        """The :class:`Selection` for a login this rule matched."""
        if self.pool is None:
            return self._selections[0]
        return self._selections[self.pool.pick_index(ctx)]


def _unique_names(instance: object, attribute: object, rules: tuple[Rule[object], ...]) -> None:
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ValueError(f"duplicate rule name {rule.name!r}")
        seen.add(rule.name)


@attr.s(auto_attribs=True, frozen=True, slots=True)
class RuleSet(Generic[T]):
    """Ordered rules; the first that matches a login decides where it goes."""

    rules: tuple[Rule[T], ...] = attr.ib(default=(), validator=_unique_names)

    def select(self, ctx: LoginContext) -> Selection[T] | None:
        """The first matching rule's choice, or ``None`` if no rule matches."""
        for rule in self.rules:
            if rule.match.matches(ctx):
                return rule.select(ctx)
        return None

    def __iter__(self) -> Iterator[Rule[T]]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)
