"""Choosing a login's URL: compute first, then the first matching rule, then the fallback."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from synapse_base_cs_url.core import LoginContext, Selection, rendezvous_pick
from synapse_base_cs_url.synapse_module.compute import ComputeHook
from synapse_base_cs_url.synapse_module.config import ModuleConfig
from synapse_base_cs_url.synapse_module.selection import (
    COMPUTE_ERROR,
    COMPUTE_INVALID,
    UrlSelector,
    context_for,
)
from tests.harness.deferreds import settle
from tests.in_synapse import compute_functions

FALLBACK = "https://fallback.example.com"
A, B, C = "https://a.example.com", "https://b.example.com", "https://c.example.com"
SECRET = "hunter2-password"


def selector(config: dict[str, Any]) -> UrlSelector:
    """A selector built the way the module builds it, from the module's own config."""
    parsed = ModuleConfig.from_config(config)
    return UrlSelector(
        default_url=parsed.base_cs_url or FALLBACK, rules=parsed.rules, compute=parsed.compute
    )


def select(
    sel: UrlSelector, ctx: LoginContext, failures: list[str] | None = None
) -> Selection[str]:
    on_failure = failures.append if failures is not None else (lambda reason: None)
    return settle(sel.select(ctx, on_failure))


def compute_hook(function: Any) -> ComputeHook:
    return ComputeHook(path="tests:fn", function=function)


def user(localpart: str, **kwargs: Any) -> LoginContext:
    return LoginContext(user_id=f"@{localpart}:hs.test", **kwargs)


class TestOrder:
    def test_fallback_when_nothing_else(self) -> None:
        assert select(selector({}), user("a")) == Selection(FALLBACK, "default")

    def test_static_only_without_rules_and_compute(self) -> None:
        # The module skips building a context for static selectors.
        assert selector({"base_cs_url": A}).is_static
        assert not selector({"rules": [{"base_cs_url": A}]}).is_static
        assert not selector({"compute": "tests.in_synapse.compute_functions:sync_url"}).is_static

    def test_configured_base_cs_url_is_the_fallback(self) -> None:
        sel = selector({"base_cs_url": "https://Configured.example.com/"})
        assert select(sel, user("a")) == Selection("https://configured.example.com", "default")

    def test_first_matching_rule_wins(self) -> None:
        sel = selector(
            {
                "rules": [
                    {"name": "never", "match": {"localpart": "nobody"}, "base_cs_url": A},
                    {"name": "eu", "match": {"user_id": "@eu_.*:hs\\.test"}, "base_cs_url": B},
                    {"name": "also-eu", "match": {"localpart": "eu_.*"}, "base_cs_url": C},
                    {"name": "catch-all", "base_cs_url": C},
                ]
            }
        )
        assert select(sel, user("eu_anna")) == Selection(B, "eu")
        assert select(sel, user("bob")) == Selection(C, "catch-all")
        assert select(sel, user("nobody")) == Selection(A, "never")

    def test_matchers_in_one_rule_combine_with_and(self) -> None:
        sel = selector(
            {
                "rules": [
                    {
                        "name": "internal-bridges",
                        "match": {
                            "login_type": "m.login.application_service",
                            "client_ip": "10.0.0.0/8",
                        },
                        "base_cs_url": A,
                    }
                ]
            }
        )
        bridge = "m.login.application_service"
        assert select(sel, user("x", login_type=bridge, client_ip="10.1.2.3")).rule_name == (
            "internal-bridges"
        )
        assert select(sel, user("x", login_type=bridge, client_ip="192.0.2.1")).rule_name == (
            "default"
        )
        assert select(sel, user("x", login_type="m.login.password", client_ip="10.1.2.3")) == (
            Selection(FALLBACK, "default")
        )

    def test_unknown_facts_never_match(self) -> None:
        sel = selector({"rules": [{"match": {"client_ip": "0.0.0.0/0"}, "base_cs_url": A}]})
        assert select(sel, user("x")) == Selection(FALLBACK, "default")

    def test_compute_comes_before_the_rules(self) -> None:
        sel = selector(
            {
                "compute": "tests.in_synapse.compute_functions:by_localpart_prefix",
                "rules": [{"name": "everyone", "base_cs_url": A}],
            }
        )
        assert select(sel, user("computed_x")) == Selection(
            "https://computed.example.com/computed_x", "compute"
        )
        assert select(sel, user("plain")) == Selection(A, "everyone")


class TestCompute:
    def test_receives_the_login_facts_as_keyword_arguments(self) -> None:
        compute_functions.CALLS.clear()
        sel = UrlSelector(
            default_url=FALLBACK, compute=compute_hook(compute_functions.record_calls)
        )
        ctx = user("a", login_type="m.login.password", client_ip="192.0.2.7", device_id="DEV")
        assert select(sel, ctx) == Selection(FALLBACK, "default")
        assert compute_functions.CALLS == [
            {
                "user_id": "@a:hs.test",
                "login_type": "m.login.password",
                "client_ip": "192.0.2.7",
                "device_id": "DEV",
            }
        ]

    @pytest.mark.parametrize(
        "path",
        ["sync_url", "chooser", "Namespace.nested", "returns_awaitable"],
    )
    def test_sync_async_and_awaitable_results(self, path: str) -> None:
        sel = selector({"compute": f"tests.in_synapse.compute_functions:{path}"})
        assert select(sel, user("a")) == Selection("https://computed.example.com", "compute")

    def test_async_function(self) -> None:
        clock = task.Clock()

        async def choose(**kwargs: Any) -> str:
            await task.deferLater(clock, 1, lambda: None)  # really waits, on Twisted's clock
            return f"https://{kwargs['user_id'][1:].replace(':', '.')}/"

        sel = UrlSelector(default_url=FALLBACK, compute=compute_hook(choose))
        d = defer.ensureDeferred(sel.select(user("a")))
        assert not d.called
        clock.advance(1)
        assert SynchronousTestCase().successResultOf(d) == Selection("https://a.hs.test", "compute")

    def test_none_falls_through_without_failure(self) -> None:
        failures: list[str] = []
        sel = UrlSelector(default_url=FALLBACK, compute=compute_hook(lambda **kw: None))
        assert select(sel, user("a"), failures) == Selection(FALLBACK, "default")
        assert failures == []

    @pytest.mark.parametrize("is_async", [False, True])
    def test_errors_fall_through_and_are_logged(
        self, is_async: bool, caplog: pytest.LogCaptureFixture
    ) -> None:
        def boom(**kwargs: Any) -> str:
            raise KeyError("no region for this user")

        async def async_boom(**kwargs: Any) -> str:
            boom()
            return A

        failures: list[str] = []
        sel = selector({"rules": [{"name": "everyone", "base_cs_url": A}]})
        sel = UrlSelector(
            default_url=FALLBACK,
            rules=sel.rules,
            compute=ComputeHook("pkg.mod:choose", async_boom if is_async else boom),
        )
        with caplog.at_level(logging.WARNING, logger="synapse_base_cs_url"):
            assert select(sel, user("a"), failures) == Selection(A, "everyone")
        assert failures == [COMPUTE_ERROR]
        [record] = caplog.records
        assert "compute function pkg.mod:choose raised for @a:hs.test" in record.getMessage()
        assert "using the rules instead" in record.getMessage()
        assert record.exc_info is not None
        assert "no region for this user" in caplog.text

    @pytest.mark.parametrize(
        ("returned", "why"),
        [
            (42, "must be a string, not int"),
            ("", "'' is not a URL"),
            ("matrix.example.com", "is a relative URL"),
            ("ftp://a.example.com", "has scheme 'ftp'"),
            ("https://a.example.com/?x=1", "has a query string"),
            ("https://a.example.com/#f", "has a fragment"),
            (b"https://a.example.com", "must be a string, not bytes"),
            (["https://a.example.com"], "must be a string, not list"),
        ],
    )
    def test_invalid_returns_fall_through_and_are_logged(
        self, returned: object, why: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        failures: list[str] = []
        sel = UrlSelector(default_url=FALLBACK, compute=compute_hook(lambda **kw: returned))
        with caplog.at_level(logging.WARNING, logger="synapse_base_cs_url"):
            assert select(sel, user("a"), failures) == Selection(FALLBACK, "default")
        assert failures == [COMPUTE_INVALID]
        [record] = caplog.records
        assert "returned an invalid base URL for @a:hs.test" in record.getMessage()
        assert why in record.getMessage()

    def test_valid_return_is_normalised(self) -> None:
        sel = UrlSelector(
            default_url=FALLBACK, compute=compute_hook(lambda **kw: "HTTPS://X.Example.com/")
        )
        assert select(sel, user("a")) == Selection("https://x.example.com", "compute")

    def test_huge_invalid_return_is_shortened_in_the_log(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        sel = UrlSelector(default_url=FALLBACK, compute=compute_hook(lambda **kw: "x" * 10_000))
        with caplog.at_level(logging.WARNING, logger="synapse_base_cs_url"):
            select(sel, user("a"))
        assert len(caplog.records[0].getMessage()) < 500

    def test_base_exceptions_are_not_swallowed(self) -> None:
        def cancelled(**kwargs: Any) -> str:
            raise KeyboardInterrupt

        sel = UrlSelector(default_url=FALLBACK, compute=compute_hook(cancelled))
        with pytest.raises(KeyboardInterrupt):
            select(sel, user("a"))


POOL: dict[str, Any] = {"name": "pool", "pool": [A, B, C]}


class TestPoolsThroughModuleConfig:
    def test_hash_is_sticky_per_user_and_spreads_users(self) -> None:
        sel = selector({"rules": [{**POOL, "strategy": "hash"}]})
        seen: Counter[str] = Counter()
        for i in range(300):
            ctx = user(f"user{i}")
            first = select(sel, ctx)
            assert first.rule_name == "pool"
            # Sticky: every later login of the same user, from anywhere, lands there too.
            for ip in ("192.0.2.1", "10.0.0.1"):
                again = select(sel, user(f"user{i}", client_ip=ip, device_id=ip))
                assert again == first
            assert first.target == rendezvous_pick((A, B, C), f"@user{i}:hs.test")
            seen[first.target] += 1
        assert set(seen) == {A, B, C}
        assert all(count > 60 for count in seen.values())

    def test_hash_is_the_default_strategy(self) -> None:
        sel = selector({"rules": [POOL]})
        assert {select(sel, user("same")).target for _ in range(20)} == {
            rendezvous_pick((A, B, C), "@same:hs.test")
        }

    def test_hash_ignores_user_id_case(self) -> None:
        sel = selector({"rules": [POOL]})
        assert select(sel, user("Alice")) == select(sel, user("alice"))

    def test_round_robin_rotates_per_login(self) -> None:
        sel = selector({"rules": [{**POOL, "strategy": "round_robin"}]})
        picks = [select(sel, user("same")).target for _ in range(7)]
        assert picks == [A, B, C, A, B, C, A]

    def test_each_pool_rotates_on_its_own(self) -> None:
        sel = selector(
            {
                "rules": [
                    {
                        "name": "x",
                        "match": {"localpart": "x"},
                        "pool": [A, B],
                        "strategy": "round_robin",
                    },
                    {"name": "y", "pool": [A, B, C], "strategy": "round_robin"},
                ]
            }
        )
        picks = [select(sel, user(name)).target for name in ("x", "y", "x", "y", "y")]
        assert picks == [A, A, B, B, C]


class TestContext:
    def test_response_user_id_and_device_id_win_over_the_body(self) -> None:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "ALICE"},
            "password": SECRET,
            "device_id": "FROM_BODY",
        }
        response = {"user_id": "@alice:hs.test", "device_id": "FROM_SYNAPSE", "access_token": "t"}
        ctx = context_for(body, "192.0.2.1", response)
        assert ctx == LoginContext(
            user_id="@alice:hs.test",
            localpart="alice",
            login_type="m.login.password",
            client_ip="192.0.2.1",
            device_id="FROM_SYNAPSE",
        )
        # Nothing secret is kept for rules or the compute function to see.
        assert SECRET not in repr(ctx)
        assert "'t'" not in repr(ctx)

    def test_third_party_login_gets_the_canonical_user(self) -> None:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "a@x.org"},
        }
        ctx = context_for(body, None, {"user_id": "@a:hs.test", "device_id": "D"})
        assert ctx.user_id == "@a:hs.test"
        assert ctx.effective_localpart == "a"
        assert (ctx.medium, ctx.address) == ("email", "a@x.org")

    def test_unreadable_body(self) -> None:
        ctx = context_for(None, "::1", {"user_id": "@a:hs.test", "device_id": "D"})
        assert ctx == LoginContext(
            user_id="@a:hs.test", localpart="a", client_ip="::1", device_id="D"
        )

    def test_odd_response_values_are_ignored(self) -> None:
        body = {"type": "m.login.password", "user": "@bob:hs.test", "device_id": "B"}
        ctx = context_for(body, None, {"user_id": 5, "device_id": ""})
        assert (ctx.user_id, ctx.localpart, ctx.device_id) == ("@bob:hs.test", "bob", "B")

    def test_appservice_registration_body_gives_its_login_type(self) -> None:
        body = {"type": "m.login.application_service", "username": "bridge_x"}
        ctx = context_for(body, None, {"user_id": "@bridge_x:hs.test", "device_id": "D"})
        assert ctx.login_type == "m.login.application_service"
