"""``explain`` on real config files: the chosen target and rule, why each earlier rule did not
fire (every matcher kind), pool scores, the portal's mode, and one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from synapse_base_cs_url.core import rendezvous_pick, rendezvous_score
from tests.harness.cli import run_tool

MODULE = "synapse_base_cs_url.BaseCsUrlModule"
POOL = ["https://a.example", "https://b.example", "https://c.example"]
RULES: list[dict[str, Any]] = [
    {"name": "internal", "match": {"client_ip": ["10.0.0.0/8"]}, "base_cs_url": "https://in.x"},
    {
        "name": "bridges",
        "match": {"login_type": "m.login.application_service"},
        "base_cs_url": "http://as:8008",
    },
    {"name": "eu", "match": {"user_id": "@.*:eu\\.example\\.com"}, "base_cs_url": "https://eu.x"},
    {"name": "ops", "match": {"localpart": "ops-.*"}, "base_cs_url": "https://ops.x"},
    {
        "name": "staff",
        "match": {"medium": "email", "address": ".*@staff\\.example\\.com"},
        "base_cs_url": "https://staff.x",
    },
    {"name": "everyone", "pool": POOL},
]


def homeserver_yaml(tmp_path: Path, config: dict[str, Any], **extra: Any) -> str:
    raw = {
        "server_name": "example.com",
        "public_baseurl": "https://matrix.example.com/",
        "modules": [{"module": "other.Module", "config": {}}, {"module": MODULE, "config": config}],
        **extra,
    }
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def portal_yaml(tmp_path: Path, **overrides: Any) -> str:
    raw: dict[str, Any] = {
        "public_baseurl": "https://matrix.example.com",
        "mode": "redirect",
        "server_name": "example.com",
        "homeservers": {
            "hs1": {"base_url": "https://hs1.example.com"},
            "hs2": {"base_url": "https://hs2.example.com"},
        },
        "routes": [{"name": "hs2-users", "match": {"user_id": "@.*:hs2\\.x"}, "homeserver": "hs2"}],
        "default_homeserver": "hs1",
        **overrides,
    }
    path = tmp_path / "portal.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.fixture
def module_file(tmp_path: Path) -> str:
    return homeserver_yaml(tmp_path, {"base_cs_url": "https://cs.example.com", "rules": RULES})


def explain(*argv: str) -> str:
    ran = run_tool("explain", *argv)
    assert ran.status == 0, ran.err
    return ran.out


def test_a_pool_pick_shows_every_members_score(module_file: str) -> None:
    out = explain("-c", module_file, "alice", "--client-ip", "192.0.2.1")
    chosen = rendezvous_pick(POOL, "@alice:example.com")
    assert f"-> {chosen}" in out
    assert "chosen by: rule 'everyone'" in out
    assert "strategy hash on '@alice:example.com'" in out
    for member in POOL:
        score = rendezvous_score(member, "@alice:example.com").hex()
        mark = "*" if member == chosen else " "
        assert f"    {mark} {score}  {member}" in out


def test_each_earlier_rule_says_which_matcher_did_not_match(module_file: str) -> None:
    out = explain("-c", module_file, "alice", "--client-ip", "192.0.2.1")
    assert "internal: client_ip is '192.0.2.1'; the rule wants in 10.0.0.0/8" in out
    assert (
        "bridges: login_type is 'm.login.password'; the rule wants one of "
        "m.login.application_service"
    ) in out
    assert "eu: user_id is '@alice:example.com'; the rule wants a full match of " in out
    assert "ops: localpart is 'alice'; the rule wants a full match of /ops-.*/" in out
    assert "staff: medium is unknown; the rule wants exactly 'email'" in out
    assert "staff: address is unknown" in out


@pytest.mark.parametrize(
    ("argv", "target", "rule"),
    [
        (["alice", "--client-ip", "10.1.2.3"], "https://in.x", "internal"),
        (["@b:eu.example.com"], "https://eu.x", "eu"),
        (["ops-carol"], "https://ops.x", "ops"),
        (
            ["--login-type", "m.login.application_service", "@bridge:example.com"],
            "http://as:8008",
            "bridges",
        ),
        (["x@staff.example.com"], "https://staff.x", "staff"),
        (["--body", '{"type": "m.login.password", "user": "ops-dan"}'], "https://ops.x", "ops"),
    ],
)
def test_each_matcher_kind_chooses(
    module_file: str, argv: list[str], target: str, rule: str
) -> None:
    out = explain("-c", module_file, *argv)
    assert f"-> {target}\n" in out
    assert f"chosen by: rule {rule!r}" in out


def test_no_client_ip_is_named_with_a_hint(module_file: str) -> None:
    out = explain("-c", module_file, "alice")
    assert "internal: client_ip is unknown (give --client-ip)" in out


def test_a_third_party_login_says_the_user_id_comes_from_synapse(module_file: str) -> None:
    out = explain("-c", module_file, "someone@else.example.com")
    assert "the user id Synapse resolves at login" in out


def test_no_rules_and_public_baseurl_as_the_default(tmp_path: Path) -> None:
    out = explain("-c", homeserver_yaml(tmp_path, {}), "@alice:example.com")
    assert "-> https://matrix.example.com\n" in out
    assert "chosen by: the default (no rules)" in out


def test_compute_is_named_but_not_called(tmp_path: Path) -> None:
    path = homeserver_yaml(
        tmp_path,
        {
            "base_cs_url": "https://cs.x",
            "compute": "tests.in_synapse.compute_functions:record_calls",
        },
    )
    from tests.in_synapse import compute_functions

    compute_functions.CALLS.clear()
    out = explain("-c", path, "alice")
    assert "compute tests.in_synapse.compute_functions:record_calls is asked first" in out
    assert compute_functions.CALLS == []


def test_portal_homeserver_and_mode(tmp_path: Path) -> None:
    out = explain("-c", portal_yaml(tmp_path), "@bob:hs2.x", "alice")
    assert "-> hs2 (https://hs2.example.com), mode redirect" in out
    assert "-> hs1 (https://hs1.example.com), mode redirect" in out
    assert "chosen by: the default (no rule fired)" in out
    auto = portal_yaml(tmp_path, mode="auto")
    assert "mode auto (proxy for User-Agents matching Dart/" in explain("-c", auto, "alice")
    dart = explain("-c", auto, "alice", "--user-agent", "Dart/3.5 (dart:io)")
    assert "mode proxy" in dart


def test_portal_token_login_goes_to_its_issuer(tmp_path: Path) -> None:
    out = explain("-c", portal_yaml(tmp_path), "--body", '{"type": "m.login.token", "token": "t"}')
    assert "the homeserver that issued the login token" in out
    assert "sso.default (hs1 (https://hs1.example.com)" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"modules": [{"module": MODULE, "config": {"base_cs_url": "ftp://x"}}]},
            "modules[0].config: synapse_base_cs_url: base_cs_url: 'ftp://x' has scheme 'ftp'",
        ),
        ({"modules": [{"module": "other.Module"}]}, "no synapse_base_cs_url.BaseCsUrlModule entry"),
        (
            {"modules": [{"module": MODULE, "config": {}}]},
            "base_cs_url is not set and Synapse's public_baseurl cannot be used",
        ),
        (
            {"homeservers": {}, "public_baseurl": "https://p.x", "default_homeserver": "a"},
            "homeservers: must name at least one homeserver",
        ),
        ({"listen": {}}, "neither a portal.yaml"),
    ],
)
def test_bad_files_are_one_line_errors(
    tmp_path: Path, content: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(content))
    ran = run_tool("explain", "-c", str(path), "alice")
    assert ran.status == 2
    assert ran.err.startswith(f"synapse-base-cs-url explain: invalid config {path}: ")
    assert message in ran.err
    assert ran.err.count("\n") == 1


def test_missing_file_and_bad_body(tmp_path: Path, module_file: str) -> None:
    ran = run_tool("explain", "-c", str(tmp_path / "nope.yaml"), "alice")
    assert ran.status == 2
    assert "nope.yaml: cannot read the config file" in ran.err
    ran = run_tool("explain", "-c", module_file, "--body", "[1]")
    assert ran.status == 2
    assert "--body: must be a JSON object" in ran.err
    assert run_tool("explain", "-c", module_file).status == 2


def test_portal_a_user_id_naming_a_server_name(tmp_path: Path) -> None:
    homeservers = {
        "hs1": {"base_url": "https://hs1.example.com"},
        "hs2": {"base_url": "https://hs2.example.com", "server_name": "hs2.example.com"},
    }
    path = portal_yaml(tmp_path, homeservers=homeservers, routes=[])
    out = explain("-c", path, "@bob:hs2.example.com")
    assert "-> hs2 (https://hs2.example.com)" in out
    assert "chosen by: its server name 'hs2.example.com' (homeservers.hs2.server_name)" in out
