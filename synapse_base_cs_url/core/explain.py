"""Why a login goes where it goes: the rule set applied step by step, for operators.

Uses the very objects that route at run time (``Rule.match``, ``Rule.select``, the pool's
hashing), so what ``synapse-base-cs-url explain`` prints is what a login would get.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import attr

from synapse_base_cs_url.core.context import LoginContext
from synapse_base_cs_url.core.matchers import Matcher
from synapse_base_cs_url.core.pools import Pool, Strategy, rendezvous_score
from synapse_base_cs_url.core.rules import Rule, RuleSet, Selection

T = TypeVar("T")


@attr.s(auto_attribs=True, frozen=True, slots=True)
class RuleTrace(Generic[T]):
    """One rule tried: the matchers that did not match (none: the rule fired)."""

    rule: Rule[T]
    failing: tuple[Matcher, ...]

    @property
    def fired(self) -> bool:
        return not self.failing


@attr.s(auto_attribs=True, frozen=True, slots=True)
class PoolTrace(Generic[T]):
    """How a pool picked: by hash of ``key`` (each member's score, highest wins), or in
    rotation (``key`` is ``None``)."""

    strategy: Strategy
    key: str | None
    scores: tuple[tuple[T, str], ...] = ()
    """(member, score as hex) for a hash pick, in config order."""


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Explanation(Generic[T]):
    """Every rule tried, in order, and what the first one that fired chose (``None``: no
    rule fired, the default applies)."""

    tried: tuple[RuleTrace[T], ...]
    selection: Selection[T] | None
    pool: PoolTrace[T] | None = None


def explain(rules: RuleSet[T], ctx: LoginContext) -> Explanation[T]:
    """Apply ``rules`` to ``ctx`` as :meth:`RuleSet.select` does, keeping the reasons."""
    tried: list[RuleTrace[T]] = []
    for rule in rules:
        failing = rule.match.failing(ctx)
        tried.append(RuleTrace(rule, failing))
        if not failing:
            pool = pool_trace(rule.pool, ctx) if rule.pool is not None else None
            return Explanation(tuple(tried), rule.select(ctx), pool)
    return Explanation(tuple(tried), None)


def pool_trace(pool: Pool[T], ctx: LoginContext) -> PoolTrace[T]:
    key = ctx.routing_key if pool.strategy is Strategy.HASH else None
    if key is None:
        return PoolTrace(pool.strategy, None)
    scores = tuple((m, rendezvous_score(str(m), key).hex()) for m in pool.members)
    return PoolTrace(pool.strategy, key, scores)
