"""The pure routing core: which base URL (or homeserver) a login is sent to.

No Synapse or Twisted imports, so the module and the portal share it and it is tested alone.
Config is parsed by :func:`parse_rules` into a :class:`RuleSet`, which maps a
:class:`LoginContext` to a :class:`Selection` (first matching rule wins).
"""

from __future__ import annotations

from synapse_base_cs_url.routing.context import LoginContext, localpart_of
from synapse_base_cs_url.routing.matchers import (
    MATCHER_NAMES,
    AddressMatcher,
    AllOf,
    ClientIpMatcher,
    LocalpartMatcher,
    LoginTypeMatcher,
    Matcher,
    MediumMatcher,
    UserIdMatcher,
    parse_match,
)
from synapse_base_cs_url.routing.parse import parse_rules
from synapse_base_cs_url.routing.pools import (
    STRATEGY_NAMES,
    Pool,
    Strategy,
    rendezvous_pick,
    rendezvous_score,
)
from synapse_base_cs_url.routing.rules import Rule, RuleSet, Selection, default_rule_name

__all__ = [
    "MATCHER_NAMES",
    "STRATEGY_NAMES",
    "AddressMatcher",
    "AllOf",
    "ClientIpMatcher",
    "LocalpartMatcher",
    "LoginContext",
    "LoginTypeMatcher",
    "Matcher",
    "MediumMatcher",
    "Pool",
    "Rule",
    "RuleSet",
    "Selection",
    "Strategy",
    "UserIdMatcher",
    "default_rule_name",
    "localpart_of",
    "parse_match",
    "parse_rules",
    "rendezvous_pick",
    "rendezvous_score",
]
