from __future__ import annotations

import re

import pytest

from synapse_base_cs_url.core import (
    LoginContext,
    Pool,
    RuleSet,
    Selection,
    Strategy,
    parse_rules,
)
from synapse_base_cs_url.core.urls import validate_base_url

ALLOWED_MATCHERS = "address, client_ip, localpart, login_type, medium, user_id"


def module_rules(raw: object) -> RuleSet[str]:
    return parse_rules(raw, key="rules", parse_target=validate_base_url, target_key="base_cs_url")


def portal_target(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9.-]+", value):
        raise ValueError(f"{value!r} is not a homeserver name")
    return value


def portal_rules(raw: object) -> RuleSet[str]:
    return parse_rules(raw, key="routes", parse_target=portal_target, target_key="homeserver")


def assert_error(raw: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        module_rules(raw)
    assert str(info.value) == message


A = "https://a.example"


class TestValid:
    def test_none_and_empty_list_are_empty(self) -> None:
        assert module_rules(None) == RuleSet()
        assert module_rules([]) == RuleSet()
        assert module_rules(()) == RuleSet()

    def test_full_example(self) -> None:
        rules = module_rules(
            [
                {
                    "name": "eu",
                    "match": {"user_id": "@.*:eu\\.example", "login_type": ["m.login.password"]},
                    "base_cs_url": "https://EU.example/",
                },
                {"match": {"client_ip": ["10.0.0.0/8", "fd00::/8"]}, "pool": [A, "https://b/"]},
                {"pool": [A], "strategy": "round_robin", "match": None, "name": None},
                {"base_cs_url": "https://fallback.example"},
            ]
        )
        assert [r.name for r in rules] == ["eu", "rule-2", "rule-3", "rule-4"]
        assert rules.rules[0].target == "https://eu.example"
        assert rules.rules[1].pool == Pool((A, "https://b"), Strategy.HASH)
        assert rules.rules[2].pool == Pool((A,), Strategy.ROUND_ROBIN)
        assert rules.rules[3].target == "https://fallback.example"

        ctx = LoginContext(user_id="@x:eu.example", login_type="m.login.password")
        assert rules.select(ctx) == Selection("https://eu.example", "eu")
        assert rules.select(LoginContext(user_id="@x:eu.example")) == Selection(A, "rule-3")
        selection = rules.select(LoginContext(user_id="@x:hs", client_ip="::ffff:10.0.0.1"))
        assert selection is not None
        assert selection.rule_name == "rule-2"

    def test_explicit_hash_strategy(self) -> None:
        rules = module_rules([{"pool": [A], "strategy": "hash"}])
        assert rules.rules[0].pool == Pool((A,), Strategy.HASH)

    def test_portal_vocabulary(self) -> None:
        rules = portal_rules(
            [
                {
                    "name": "eu",
                    "match": {"medium": "email", "address": ".*@eu"},
                    "homeserver": "eu",
                },
                {"pool": ["hs1", "hs2"]},
            ]
        )
        assert rules.select(LoginContext(medium="email", address="a@eu")) == Selection("eu", "eu")
        selection = rules.select(LoginContext(user_id="@x:y"))
        assert selection is not None
        assert selection.target in ("hs1", "hs2")

    def test_default_name_may_be_used_explicitly_elsewhere(self) -> None:
        rules = module_rules(
            [{"name": "rule-2", "base_cs_url": A}, {"name": "x", "base_cs_url": A}]
        )
        assert [r.name for r in rules] == ["rule-2", "x"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "rules: must be a list of rules, not dict"),
        ("x", "rules: must be a list of rules, not str"),
        ([{"base_cs_url": A}, {"base_cs_url": A}, "x"], "rules[2]: must be a mapping, not str"),
        ([None], "rules[0]: must be a mapping, not null"),
        (
            [{"base_cs_url": A}, {"base_cs_url": A}, {"matches": {}, "base_cs_url": A}],
            "rules[2]: unknown key 'matches'; allowed keys: base_cs_url, match, name, pool, "
            "strategy",
        ),
        ([{}], "rules[0]: give exactly one of 'base_cs_url' or 'pool'"),
        ([{"name": "x"}], "rules[0]: give exactly one of 'base_cs_url' or 'pool'"),
        (
            [{"base_cs_url": A, "pool": [A]}],
            "rules[0]: give exactly one of 'base_cs_url' or 'pool'",
        ),
        # names
        ([{"name": "", "base_cs_url": A}], "rules[0].name: must be a non-empty string, not ''"),
        ([{"name": 3, "base_cs_url": A}], "rules[0].name: must be a non-empty string, not 3"),
        (
            [{"name": "eu", "base_cs_url": A}, {"base_cs_url": A}, {"name": "eu", "pool": [A]}],
            "rules[2].name: duplicate rule name 'eu'; names must be unique (already used by "
            "rules[0])",
        ),
        (
            [{"name": "rule-2", "base_cs_url": A}, {"base_cs_url": A}],
            "rules[1]: this unnamed rule's default name 'rule-2' is already used by rules[0]; "
            "give one of them a different name",
        ),
        # match
        (
            [{"match": [], "base_cs_url": A}],
            "rules[0].match: must be a mapping of matcher name to value, not list",
        ),
        (
            [{"match": {"ip": "10.0.0.0/8"}, "base_cs_url": A}],
            f"rules[0].match: unknown matcher 'ip'; allowed matchers: {ALLOWED_MATCHERS}",
        ),
        (
            [{"match": {1: "x"}, "base_cs_url": A}],
            f"rules[0].match: unknown matcher 1; allowed matchers: {ALLOWED_MATCHERS}",
        ),
        (
            [{"match": {"user_id": "("}, "base_cs_url": A}],
            "rules[0].match.user_id: invalid regex '(': missing ), unterminated subpattern at "
            "position 0",
        ),
        (
            [{"match": {"localpart": "[a-"}, "base_cs_url": A}],
            "rules[0].match.localpart: invalid regex '[a-': unterminated character set at "
            "position 0",
        ),
        (
            [{"match": {"address": None}, "base_cs_url": A}],
            "rules[0].match.address: must be a string (a regular expression), not null",
        ),
        (
            [{"match": {"user_id": ["@a:b"]}, "base_cs_url": A}],
            "rules[0].match.user_id: must be a string (a regular expression), not list",
        ),
        (
            [{"match": {"client_ip": ["10.0.0.0/8", "10.0.0.0/33"]}, "base_cs_url": A}],
            "rules[0].match.client_ip[1]: '10.0.0.0/33' is not an IP network: '10.0.0.0/33' "
            "does not appear to be an IPv4 or IPv6 network",
        ),
        (
            [{"match": {"client_ip": "10.1.0.0/8"}, "base_cs_url": A}],
            "rules[0].match.client_ip: '10.1.0.0/8' is not an IP network: 10.1.0.0/8 has host "
            "bits set",
        ),
        (
            [{"match": {"client_ip": "2001:db8::/129"}, "base_cs_url": A}],
            "rules[0].match.client_ip: '2001:db8::/129' is not an IP network: '2001:db8::/129' "
            "does not appear to be an IPv4 or IPv6 network",
        ),
        (
            [{"match": {"client_ip": 10}, "base_cs_url": A}],
            "rules[0].match.client_ip: must be an IP network (CIDR) string or a list of them, "
            "not int",
        ),
        (
            [{"match": {"client_ip": []}, "base_cs_url": A}],
            "rules[0].match.client_ip: must not be an empty list (it could never match)",
        ),
        (
            [{"match": {"login_type": [1]}, "base_cs_url": A}],
            "rules[0].match.login_type[0]: must be a login type string, not int",
        ),
        (
            [{"match": {"login_type": {"a": 1}}, "base_cs_url": A}],
            "rules[0].match.login_type: must be a login type string or a list of them, not dict",
        ),
        (
            [{"match": {"medium": 3}, "base_cs_url": A}],
            "rules[0].match.medium: must be a non-empty string such as 'email' or 'msisdn'",
        ),
        # targets and pools
        (
            [{"base_cs_url": "/relative"}],
            "rules[0].base_cs_url: '/relative' is a relative URL; give an absolute http(s) URL",
        ),
        ([{"pool": []}], "rules[0].pool: must be a non-empty list"),
        ([{"pool": A}], "rules[0].pool: must be a non-empty list, not str"),
        ([{"pool": None}], "rules[0].pool: must be a non-empty list, not null"),
        (
            [{"pool": [A, "ftp://b"]}],
            "rules[0].pool[1]: 'ftp://b' has scheme 'ftp'; only http and https are allowed",
        ),
        (
            [{"pool": [A, "https://b", "https://A.example/"]}],
            "rules[0].pool[2]: 'https://A.example/' duplicates rules[0].pool[0] (both are "
            "'https://a.example'); pool members must be distinct",
        ),
        (
            [{"pool": [A], "strategy": "random"}],
            "rules[0].strategy: unknown strategy 'random'; allowed: hash, round_robin",
        ),
        (
            [{"pool": [A], "strategy": None}],
            "rules[0].strategy: unknown strategy None; allowed: hash, round_robin",
        ),
        (
            [{"base_cs_url": A, "strategy": "hash"}],
            "rules[0].strategy: only allowed with 'pool', not with 'base_cs_url'",
        ),
    ],
)
def test_module_errors(raw: object, message: str) -> None:
    assert_error(raw, message)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"a": 1}, "routes: must be a list of rules, not dict"),
        (
            [{"base_cs_url": "x"}],
            "routes[0]: unknown key 'base_cs_url'; allowed keys: homeserver, match, name, pool, "
            "strategy",
        ),
        (
            [{"pool": ["hs1"], "homeserver": "x"}],
            "routes[0]: give exactly one of 'homeserver' or 'pool'",
        ),
        ([{"homeserver": "Bad!"}], "routes[0].homeserver: 'Bad!' is not a homeserver name"),
        ([{"pool": ["hs1", 2]}], "routes[0].pool[1]: 2 is not a homeserver name"),
        (
            [{"homeserver": "hs1", "match": {"ip": "x"}}],
            f"routes[0].match: unknown matcher 'ip'; allowed matchers: {ALLOWED_MATCHERS}",
        ),
    ],
)
def test_portal_errors(raw: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        portal_rules(raw)
    assert str(info.value) == message


def test_custom_pool_key() -> None:
    rules = parse_rules(
        [{"servers": ["hs1", "hs2"], "strategy": "round_robin"}],
        key="routes",
        parse_target=portal_target,
        target_key="homeserver",
        pool_key="servers",
    )
    assert rules.rules[0].pool == Pool(("hs1", "hs2"), Strategy.ROUND_ROBIN)
    with pytest.raises(ValueError) as info:
        parse_rules(
            [{"pool": ["hs1"]}],
            key="routes",
            parse_target=portal_target,
            target_key="homeserver",
            pool_key="servers",
        )
    assert str(info.value) == (
        "routes[0]: unknown key 'pool'; allowed keys: homeserver, match, name, servers, strategy"
    )


def test_parse_target_errors_other_than_value_error_propagate() -> None:
    def boom(value: object) -> str:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match=r"^bug$"):
        parse_rules([{"t": 1}], key="k", parse_target=boom, target_key="t")
