from __future__ import annotations

import pytest

from synapse_base_cs_url.core import (
    LoginContext,
    Pool,
    Rule,
    RuleSet,
    Selection,
    Strategy,
    default_rule_name,
    parse_match,
)

EU, US, FALLBACK = "https://eu.example", "https://us.example", "https://fallback.example"


def rule(
    name: str,
    match: dict[str, object] | None = None,
    *,
    target: str | None = None,
    pool: Pool[str] | None = None,
) -> Rule[str]:
    return Rule(name=name, match=parse_match(match, "test"), target=target, pool=pool)


def test_default_rule_name_is_one_based() -> None:
    assert default_rule_name(0) == "rule-1"
    assert default_rule_name(9) == "rule-10"


class TestRule:
    def test_exactly_one_of_target_or_pool(self) -> None:
        with pytest.raises(ValueError, match=r"^rule 'x': give exactly one of target or pool$"):
            Rule(name="x")
        with pytest.raises(ValueError, match=r"^rule 'x': give exactly one of target or pool$"):
            Rule(name="x", target=EU, pool=Pool((US,)))

    def test_no_match_always_matches(self) -> None:
        assert rule("a", target=EU).matches(LoginContext())


class TestRuleSet:
    rules = RuleSet(
        (
            rule("eu", {"localpart": "eu-.*"}, target=EU),
            rule("sso-office", {"login_type": "m.login.sso", "client_ip": "10.0.0.0/8"}, target=US),
            rule("also-eu", {"user_id": "@.*:eu\\.example"}, target=US),
            rule("catch-all", target=FALLBACK),
            rule("never", target=EU),
        )
    )

    def test_first_match_wins(self) -> None:
        ctx = LoginContext(user_id="@eu-alice:eu.example")
        assert self.rules.select(ctx) == Selection(target=EU, rule_name="eu")
        ctx = LoginContext(user_id="@bob:eu.example")
        assert self.rules.select(ctx) == Selection(target=US, rule_name="also-eu")

    def test_and_semantics(self) -> None:
        both = LoginContext(login_type="m.login.sso", client_ip="10.9.9.9")
        assert self.rules.select(both) == Selection(US, "sso-office")
        only_type = LoginContext(login_type="m.login.sso", client_ip="192.0.2.1")
        assert self.rules.select(only_type) == Selection(FALLBACK, "catch-all")
        only_ip = LoginContext(login_type="m.login.password", client_ip="10.9.9.9")
        assert self.rules.select(only_ip) == Selection(FALLBACK, "catch-all")

    def test_catch_all_takes_everything_else(self) -> None:
        assert self.rules.select(LoginContext()) == Selection(FALLBACK, "catch-all")

    def test_no_match_is_none(self) -> None:
        rules = RuleSet((rule("eu", {"localpart": "eu-.*"}, target=EU),))
        assert rules.select(LoginContext(localpart="us-bob")) is None
        assert RuleSet[str]().select(LoginContext(localpart="us-bob")) is None

    def test_pool_rule(self) -> None:
        rules = RuleSet(
            (
                rule("rr", {"medium": "email"}, pool=Pool((EU, US), Strategy.ROUND_ROBIN)),
                rule("hashed", pool=Pool((EU, US, FALLBACK))),
            )
        )
        ctx = LoginContext(medium="email", address="a@b.c")
        assert [rules.select(ctx) for _ in range(3)] == [
            Selection(EU, "rr"),
            Selection(US, "rr"),
            Selection(EU, "rr"),
        ]
        ctx = LoginContext(user_id="@alice:hs")
        first = rules.select(ctx)
        assert first is not None
        assert first.rule_name == "hashed"
        assert all(rules.select(ctx) == first for _ in range(10))

    def test_unique_names(self) -> None:
        with pytest.raises(ValueError, match=r"^duplicate rule name 'a'$"):
            RuleSet((rule("a", target=EU), rule("b", target=US), rule("a", target=US)))

    def test_len_and_iter(self) -> None:
        assert len(self.rules) == 5
        assert [r.name for r in self.rules] == ["eu", "sso-office", "also-eu", "catch-all", "never"]
        assert len(RuleSet[str]()) == 0
