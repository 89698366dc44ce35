"""The pure core: which base URL (or homeserver) a login is sent to, and how it is written.

No Synapse or Twisted imports, so the module and the portal share it and it is tested alone.
Config is parsed by :func:`parse_rules` into a :class:`RuleSet`, which maps a
:class:`LoginContext` to a :class:`Selection` (first matching rule wins). ``urls`` validates
base URLs, ``login_response`` writes one into a login response, and ``config_values`` turns
YAML values into typed ones with messages that name the key.
"""

from __future__ import annotations

from synapse_base_cs_url.core.context import LoginContext, localpart_of
from synapse_base_cs_url.core.json_dict import JsonDict
from synapse_base_cs_url.core.matchers import (
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
from synapse_base_cs_url.core.parse import parse_rules
from synapse_base_cs_url.core.pools import (
    STRATEGY_NAMES,
    Pool,
    Strategy,
    rendezvous_pick,
    rendezvous_score,
)
from synapse_base_cs_url.core.rules import Rule, RuleSet, Selection, default_rule_name

__all__ = [
    "MATCHER_NAMES",
    "STRATEGY_NAMES",
    "AddressMatcher",
    "AllOf",
    "ClientIpMatcher",
    "JsonDict",
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
