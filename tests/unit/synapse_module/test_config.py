"""Every config mistake stops Synapse with a message that starts with the offending key."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synapse.module_api.errors import ConfigError

from synapse_base_cs_url.core import Pool, RuleSet, Strategy
from synapse_base_cs_url.synapse_module.config import ModuleConfig
from synapse_base_cs_url.synapse_module.module import BaseCsUrlModule
from tests.in_synapse import compute_functions

A = "https://a.example.com"
B = "https://b.example.com"
ALLOWED_KEYS = "base_cs_url, compute, on_register, placement, rules, well_known"
ALLOWED_MATCHERS = "address, client_ip, localpart, login_type, medium, user_id"
ALLOWED_RULE_KEYS = "base_cs_url, match, name, pool, strategy"
KWARGS = "user_id, login_type, client_ip, device_id"
SUPPORT = "tests.in_synapse.compute_functions"


class TestValid:
    def test_empty_and_missing_config_use_defaults(self) -> None:
        for raw in (None, {}):
            config = ModuleConfig.from_config(raw)
            assert config == ModuleConfig()
            assert config.base_cs_url is None
            assert config.well_known is True
            assert config.rules == RuleSet()
            assert config.compute is None
            assert config.on_register is False

    def test_explicit_nulls_mean_unset(self) -> None:
        assert (
            ModuleConfig.from_config({"base_cs_url": None, "rules": None, "compute": None})
            == ModuleConfig()
        )

    def test_full_config(self) -> None:
        config = BaseCsUrlModule.parse_config(
            {
                "base_cs_url": "HTTPS://Matrix.Example.com/",
                "well_known": False,
                "rules": [
                    {
                        "name": "internal",
                        "match": {"client_ip": ["10.0.0.0/8", "fd00::/8"]},
                        "base_cs_url": "https://internal.example.com",
                    },
                    {"pool": [A, B], "strategy": "round_robin"},
                ],
                "compute": f"{SUPPORT}:sync_url",
                "on_register": True,
            }
        )
        assert config.base_cs_url == "https://matrix.example.com"
        assert config.well_known is False
        assert [rule.name for rule in config.rules] == ["internal", "rule-2"]
        assert config.rules.rules[0].target == "https://internal.example.com"
        assert config.rules.rules[1].pool == Pool((A, B), Strategy.ROUND_ROBIN)
        assert config.compute is not None
        assert config.compute.path == f"{SUPPORT}:sync_url"
        assert config.compute.function is compute_functions.sync_url
        assert config.on_register is True

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            (f"{SUPPORT}:sync_url", compute_functions.sync_url),
            (f"{SUPPORT}.sync_url", compute_functions.sync_url),
            (f"{SUPPORT}:by_localpart_prefix", compute_functions.by_localpart_prefix),
            (f"{SUPPORT}:chooser", compute_functions.chooser),
            (f"{SUPPORT}:Namespace.nested", compute_functions.Namespace.nested),
            (f"{SUPPORT}:record_calls", compute_functions.record_calls),
        ],
    )
    def test_compute_paths(self, path: str, expected: object) -> None:
        config = ModuleConfig.from_config({"compute": path})
        assert config.compute is not None
        assert config.compute.function is expected


BAD_CONFIGS: list[tuple[Any, str]] = [
    # the config as a whole
    ([], "config: must be a mapping, not list"),
    ("base_cs_url: x", "config: must be a mapping, not str"),
    ({"base_url": A}, f"unknown key 'base_url'; allowed keys: {ALLOWED_KEYS}"),
    ({"rule": []}, f"unknown key 'rule'; allowed keys: {ALLOWED_KEYS}"),
    # base_cs_url (issue 2)
    ({"base_cs_url": 42}, "base_cs_url: must be a string, not int"),
    ({"base_cs_url": [A]}, "base_cs_url: must be a string, not list"),
    ({"base_cs_url": True}, "base_cs_url: must be a string, not bool"),
    ({"base_cs_url": ""}, "base_cs_url: '' is not a URL (empty or surrounded by whitespace)"),
    (
        {"base_cs_url": " https://x.example"},
        "base_cs_url: ' https://x.example' is not a URL (empty or surrounded by whitespace)",
    ),
    (
        {"base_cs_url": "cs.example.com"},
        "base_cs_url: 'cs.example.com' is a relative URL; give an absolute http(s) URL",
    ),
    (
        {"base_cs_url": "/_matrix"},
        "base_cs_url: '/_matrix' is a relative URL; give an absolute http(s) URL",
    ),
    (
        {"base_cs_url": "ftp://cs.example.com"},
        "base_cs_url: 'ftp://cs.example.com' has scheme 'ftp'; only http and https are allowed",
    ),
    (
        {"base_cs_url": "wss://cs.example.com"},
        "base_cs_url: 'wss://cs.example.com' has scheme 'wss'; only http and https are allowed",
    ),
    ({"base_cs_url": "https://"}, "base_cs_url: 'https://' has no host"),
    (
        {"base_cs_url": "https://u:p@cs.example.com"},
        "base_cs_url: 'https://***@cs.example.com' must not contain credentials",
    ),
    (
        {"base_cs_url": "https://cs.example.com/?a=1"},
        "base_cs_url: 'https://cs.example.com/?a=1' has a query string; a base URL cannot have one",
    ),
    (
        {"base_cs_url": "https://cs.example.com?"},
        "base_cs_url: 'https://cs.example.com?' has a query string; a base URL cannot have one",
    ),
    (
        {"base_cs_url": "https://cs.example.com/#top"},
        "base_cs_url: 'https://cs.example.com/#top' has a fragment; a base URL cannot have one",
    ),
    (
        {"base_cs_url": "https://cs.example.com:99999"},
        "base_cs_url: 'https://cs.example.com:99999' is not a valid URL: Port out of range 0-65535",
    ),
    # well_known (issue 2)
    ({"well_known": "yes"}, "well_known: must be true or false, not 'yes'"),
    ({"well_known": 1}, "well_known: must be true or false, not 1"),
    ({"well_known": None}, "well_known: must be true or false, not None"),
    # on_register
    ({"on_register": "true"}, "on_register: must be true or false, not 'true'"),
    ({"on_register": 0}, "on_register: must be true or false, not 0"),
    ({"on_register": None}, "on_register: must be true or false, not None"),
    # rules: shape
    ({"rules": {"name": "x"}}, "rules: must be a list of rules, not dict"),
    ({"rules": A}, "rules: must be a list of rules, not str"),
    ({"rules": [A]}, "rules[0]: must be a mapping, not str"),
    ({"rules": [None]}, "rules[0]: must be a mapping, not null"),
    (
        {"rules": [{"base_cs_url": A}, {"matches": {}, "base_cs_url": A}]},
        f"rules[1]: unknown key 'matches'; allowed keys: {ALLOWED_RULE_KEYS}",
    ),
    ({"rules": [{}]}, "rules[0]: give exactly one of 'base_cs_url' or 'pool'"),
    ({"rules": [{"name": "x"}]}, "rules[0]: give exactly one of 'base_cs_url' or 'pool'"),
    (
        {"rules": [{"base_cs_url": A, "pool": [A]}]},
        "rules[0]: give exactly one of 'base_cs_url' or 'pool'",
    ),
    # rules: names
    (
        {"rules": [{"name": "", "base_cs_url": A}]},
        "rules[0].name: must be a non-empty string, not ''",
    ),
    (
        {"rules": [{"name": 7, "base_cs_url": A}]},
        "rules[0].name: must be a non-empty string, not 7",
    ),
    (
        {"rules": [{"name": "eu", "base_cs_url": A}, {"name": "eu", "base_cs_url": B}]},
        "rules[1].name: duplicate rule name 'eu'; names must be unique (already used by rules[0])",
    ),
    (
        {"rules": [{"name": "rule-2", "base_cs_url": A}, {"base_cs_url": B}]},
        "rules[1]: this unnamed rule's default name 'rule-2' is already used by rules[0]; "
        "give one of them a different name",
    ),
    (
        {"rules": [{"base_cs_url": A}, {"name": "default", "base_cs_url": B}]},
        "rules[1].name: 'default' is reserved (it names the fallback URL in metrics); choose "
        "another name",
    ),
    (
        {"rules": [{"name": "compute", "pool": [A, B]}]},
        "rules[0].name: 'compute' is reserved (it names the compute function in metrics); "
        "choose another name",
    ),
    # rules: matchers
    (
        {"rules": [{"match": [], "base_cs_url": A}]},
        "rules[0].match: must be a mapping of matcher name to value, not list",
    ),
    (
        {"rules": [{"match": {"ip": "10.0.0.0/8"}, "base_cs_url": A}]},
        f"rules[0].match: unknown matcher 'ip'; allowed matchers: {ALLOWED_MATCHERS}",
    ),
    (
        {"rules": [{"match": {"user_id": "("}, "base_cs_url": A}]},
        "rules[0].match.user_id: invalid regex '(': missing ), unterminated subpattern at "
        "position 0",
    ),
    (
        {"rules": [{"match": {"user_id": ["@a:b"]}, "base_cs_url": A}]},
        "rules[0].match.user_id: must be a string (a regular expression), not list",
    ),
    (
        {"rules": [{"match": {"localpart": "[a-"}, "base_cs_url": A}]},
        "rules[0].match.localpart: invalid regex '[a-': unterminated character set at position 0",
    ),
    (
        {"rules": [{"match": {"address": None}, "base_cs_url": A}]},
        "rules[0].match.address: must be a string (a regular expression), not null",
    ),
    (
        {"rules": [{"match": {"medium": ""}, "base_cs_url": A}]},
        "rules[0].match.medium: must be a non-empty string such as 'email' or 'msisdn'",
    ),
    (
        {"rules": [{"match": {"login_type": [1]}, "base_cs_url": A}]},
        "rules[0].match.login_type[0]: must be a login type string, not int",
    ),
    (
        {"rules": [{"match": {"login_type": []}, "base_cs_url": A}]},
        "rules[0].match.login_type: must not be an empty list (it could never match)",
    ),
    (
        {"rules": [{"match": {"login_type": {"a": 1}}, "base_cs_url": A}]},
        "rules[0].match.login_type: must be a login type string or a list of them, not dict",
    ),
    (
        {"rules": [{"match": {"client_ip": ["10.0.0.0/8", "10.0.0.0/33"]}, "base_cs_url": A}]},
        "rules[0].match.client_ip[1]: '10.0.0.0/33' is not an IP network: '10.0.0.0/33' does "
        "not appear to be an IPv4 or IPv6 network",
    ),
    (
        {"rules": [{"match": {"client_ip": "10.1.0.0/8"}, "base_cs_url": A}]},
        "rules[0].match.client_ip: '10.1.0.0/8' is not an IP network: 10.1.0.0/8 has host bits set",
    ),
    (
        {"rules": [{"match": {"client_ip": 10}, "base_cs_url": A}]},
        "rules[0].match.client_ip: must be an IP network (CIDR) string or a list of them, not int",
    ),
    # rules: targets and pools, validated like base_cs_url
    (
        {"rules": [{"base_cs_url": "matrix.example.com"}]},
        "rules[0].base_cs_url: 'matrix.example.com' is a relative URL; give an absolute "
        "http(s) URL",
    ),
    (
        {"rules": [{"base_cs_url": "https://x.example/?q"}]},
        "rules[0].base_cs_url: 'https://x.example/?q' has a query string; a base URL cannot "
        "have one",
    ),
    ({"rules": [{"base_cs_url": None}]}, "rules[0].base_cs_url: must be a string, not NoneType"),
    ({"rules": [{"pool": []}]}, "rules[0].pool: must be a non-empty list"),
    ({"rules": [{"pool": A}]}, "rules[0].pool: must be a non-empty list, not str"),
    (
        {"rules": [{"pool": [A, "ftp://b.example.com"]}]},
        "rules[0].pool[1]: 'ftp://b.example.com' has scheme 'ftp'; only http and https are allowed",
    ),
    (
        {"rules": [{"pool": [A, "https://b.example.com#x"]}]},
        "rules[0].pool[1]: 'https://b.example.com#x' has a fragment; a base URL cannot have one",
    ),
    (
        {"rules": [{"pool": [A, B, "HTTPS://A.example.com/"]}]},
        "rules[0].pool[2]: 'HTTPS://A.example.com/' duplicates rules[0].pool[0] (both are "
        "'https://a.example.com'); pool members must be distinct",
    ),
    (
        {"rules": [{"pool": [A], "strategy": "random"}]},
        "rules[0].strategy: unknown strategy 'random'; allowed: hash, round_robin",
    ),
    (
        {"rules": [{"base_cs_url": A, "strategy": "hash"}]},
        "rules[0].strategy: only allowed with 'pool', not with 'base_cs_url'",
    ),
    # compute
    (
        {"compute": 42},
        "compute: must be a dotted path such as 'mypackage.routing:choose_base_url', not int",
    ),
    (
        {"compute": ""},
        "compute: must be a dotted path such as 'mypackage.routing:choose_base_url', not an "
        "empty string",
    ),
    (
        {"compute": "choose_base_url"},
        "compute: 'choose_base_url' is not a dotted path to a function; use "
        "'mypackage.routing:choose_base_url'",
    ),
    (
        {"compute": "mypackage.routing:"},
        "compute: 'mypackage.routing:' is not a dotted path to a function; use "
        "'mypackage.routing:choose_base_url'",
    ),
    (
        {"compute": "mypackage.routing:choose-base-url"},
        "compute: 'mypackage.routing:choose-base-url' is not a dotted path to a function; use "
        "'mypackage.routing:choose_base_url'",
    ),
    (
        {"compute": "a:b:c"},
        "compute: 'a:b:c' has more than one ':'; use 'mypackage.routing:choose_base_url'",
    ),
    (
        {"compute": "no_such_package.routing:choose"},
        "compute: cannot import module 'no_such_package.routing' of "
        "'no_such_package.routing:choose': ModuleNotFoundError: No module named "
        "'no_such_package'",
    ),
    (
        {"compute": "tests.in_synapse.compute_import_error:choose"},
        "compute: cannot import module 'tests.in_synapse.compute_import_error' of "
        "'tests.in_synapse.compute_import_error:choose': RuntimeError: this module is broken on "
        "purpose",
    ),
    (
        {"compute": f"{SUPPORT}:no_such_function"},
        f"compute: '{SUPPORT}:no_such_function': module '{SUPPORT}' has no attribute "
        "'no_such_function'",
    ),
    (
        {"compute": f"{SUPPORT}.no_such_function"},
        f"compute: '{SUPPORT}.no_such_function': module '{SUPPORT}' has no attribute "
        "'no_such_function'",
    ),
    (
        {"compute": f"{SUPPORT}:Namespace.missing"},
        f"compute: '{SUPPORT}:Namespace.missing': type 'Namespace' has no attribute 'missing'",
    ),
    (
        {"compute": f"{SUPPORT}:NOT_CALLABLE"},
        f"compute: '{SUPPORT}:NOT_CALLABLE' is not callable (it is a str)",
    ),
    (
        {"compute": f"{SUPPORT}:wrong_signature"},
        f"compute: '{SUPPORT}:wrong_signature' cannot be called with the keyword arguments "
        f"{KWARGS}: missing a required argument: 'user'",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD_CONFIGS)
def test_error_message(raw: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        ModuleConfig.from_config(raw)
    assert str(info.value) == message


@pytest.mark.parametrize(("raw", "message"), BAD_CONFIGS)
def test_synapse_gets_a_config_error_naming_the_module(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        BaseCsUrlModule.parse_config(raw)
    assert str(info.value) == f"synapse_base_cs_url: {message}"
    # No chained ValueError: Synapse prints the message, not a traceback of our parser.
    assert info.value.__cause__ is None


# --- any YAML at all: a ValueError naming the key, never a crash -----------------------------

YAML_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(
        [A, "10.0.0.0/8", "hash", "round_robin", "m.login.password", ".*", "(", "compute"]
    ),
)
YAML_VALUES = st.recursive(
    YAML_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(
                st.sampled_from(
                    ["name", "match", "base_cs_url", "pool", "strategy", "user_id", "client_ip"]
                ),
                st.text(max_size=10),
            ),
            children,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
KEYS = ("base_cs_url", "well_known", "rules", "on_register", "unknown")
# Random strings as compute paths would import random modules; use known ones and non-strings.
COMPUTE_VALUES = st.one_of(
    YAML_VALUES.filter(lambda v: not isinstance(v, str)),
    st.sampled_from([f"{SUPPORT}:sync_url", f"{SUPPORT}:NOT_CALLABLE", "no_such_pkg_x:f", "x"]),
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.sampled_from(KEYS), YAML_VALUES, max_size=3),
    st.none() | COMPUTE_VALUES,
)
def test_any_value_is_accepted_or_rejected_with_the_key_named(
    raw: dict[str, Any], compute: object
) -> None:
    if compute is not None:
        raw["compute"] = compute
    try:
        ModuleConfig.from_config(raw)
    except ValueError as e:
        message = str(e)
        if message.startswith("unknown key "):
            assert "unknown" in raw
        else:
            key = re.match(r"[a-z_]+", message)
            assert key is not None and key.group() in raw, message
