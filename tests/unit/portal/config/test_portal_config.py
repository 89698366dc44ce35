"""portal.yaml parsing: defaults, and every error message starting with its key path."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from synapse_base_cs_url.core import LoginContext
from synapse_base_cs_url.portal.config.login import Mode
from synapse_base_cs_url.portal.config.portal_config import PortalConfig

VALID: dict[str, Any] = {
    "listen": {"host": "127.0.0.1", "port": 8080},
    "public_baseurl": "https://matrix.example.com/",
    "mode": "redirect",
    "homeservers": {
        "hs1": {"base_url": "https://hs1.example.com"},
        "hs2": {"base_url": "https://hs2.example.com", "proxy_url": "http://10.1.0.2:8008"},
    },
    "routes": [
        {"match": {"user_id": "@.*:hs2\\.example\\.com"}, "homeserver": "hs2"},
        {"match": {"address": ".*@dept2\\.example\\.com"}, "homeserver": "hs2"},
        {"pool": ["hs1", "hs2"], "strategy": "hash"},
    ],
    "default_homeserver": "hs1",
}


def test_the_issue_example_parses_with_defaults() -> None:
    config = PortalConfig.from_config(VALID)
    assert config.public_baseurl == "https://matrix.example.com"
    assert config.mode is Mode.REDIRECT
    assert config.homeservers["hs1"].proxy_url == "https://hs1.example.com"
    assert config.homeservers["hs2"].proxy_url == "http://10.1.0.2:8008"
    assert config.default_homeserver == config.sso.default == "hs1"
    assert config.max_body_size == 64 * 1024
    assert (config.timeouts.connect, config.timeouts.total) == (5.0, 30.0)
    assert [p.pattern for p in config.proxy_user_agents] == ["Dart/"]
    assert config.discovery_cache_ttl == 10.0
    assert (config.metrics.public, config.metrics.listener) == (False, None)
    assert config.listen.x_forwarded is False
    assert config.server_name is None
    selection = config.routes.select(LoginContext(user_id="@a:hs2.example.com"))
    assert selection is not None
    assert (selection.target, selection.rule_name) == ("hs2", "rule-1")


def test_everything_set() -> None:
    raw = copy.deepcopy(VALID)
    raw.update(
        mode="auto",
        sso={"default": "hs2"},
        server_name="example.com",
        proxy_user_agents=["Dart/", "^MyApp"],
        max_body_size=1024,
        timeouts={"connect": 1, "total": 2.5},
        discovery_cache_ttl=0,
        metrics={"host": "10.0.0.5", "port": 9101},
        listen={"host": "0.0.0.0", "port": 0, "x_forwarded": True},
    )
    config = PortalConfig.from_config(raw)
    assert config.mode is Mode.AUTO
    assert config.sso.default == "hs2"
    assert config.server_name == "example.com"
    assert len(config.proxy_user_agents) == 2
    assert (config.timeouts.connect, config.timeouts.total) == (1.0, 2.5)
    assert (config.max_body_size, config.discovery_cache_ttl) == (1024, 0.0)
    assert config.metrics.listener is not None and not config.metrics.public
    assert (config.metrics.listener.host, config.metrics.listener.port) == ("10.0.0.5", 9101)
    assert config.listen.x_forwarded is True


def test_empty_user_agent_list_means_auto_never_proxies() -> None:
    raw = dict(VALID, proxy_user_agents=[])
    assert PortalConfig.from_config(raw).proxy_user_agents == ()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = raw
        for key in parents:
            target = target[key]
        target[last] = value

    return apply


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = raw
        for key in parents:
            target = target[key]
        del target[last]

    return apply


CASES = [
    (_set("bogus", 1), "config: unknown key 'bogus'; allowed keys: "),
    (_delete("homeservers"), "homeservers: required"),
    (_set("homeservers", ["hs1"]), "homeservers: must be a mapping of name to settings, not list"),
    (_set("homeservers", {}), "homeservers: must name at least one homeserver"),
    (_set("homeservers.bad name", {"base_url": "https://x.example"}), "homeservers: invalid name"),
    (_set("homeservers.hs1", "https://hs1.example.com"), "homeservers.hs1: must be a mapping"),
    (
        _set("homeservers.hs1.port", 1),
        "homeservers.hs1: unknown key 'port'; allowed keys: admin_token_file, base_url, "
        "placement_secret_file, proxy_url",
    ),
    (_delete("homeservers.hs1.base_url"), "homeservers.hs1.base_url: required"),
    (
        _set("homeservers.hs1.base_url", "hs1.example.com"),
        "homeservers.hs1.base_url: 'hs1.example.com' is a relative URL",
    ),
    (
        _set("homeservers.hs2.proxy_url", "ftp://10.1.0.2"),
        "homeservers.hs2.proxy_url: 'ftp://10.1.0.2' has scheme 'ftp'",
    ),
    (
        _set("homeservers.hs2.proxy_url", "http://h/?q=1"),
        "homeservers.hs2.proxy_url: 'http://h/?q=1' has a query string",
    ),
    (_set("routes", {"hs2": "x"}), "routes: must be a list of rules, not dict"),
    (
        _set("routes", [{"match": {"user_id": "x"}, "homeserver": "hs3"}]),
        "routes[0].homeserver: unknown homeserver 'hs3'; configured homeservers: hs1, hs2",
    ),
    (
        _set("routes", [{"homeserver": 2}]),
        "routes[0].homeserver: must be the name of a homeserver, not int",
    ),
    (_set("routes", [{"pool": ["hs1", "hs9"]}]), "routes[0].pool[1]: unknown homeserver 'hs9'"),
    (
        _set("routes", [{"pool": ["hs1", "hs1"]}]),
        "routes[0].pool[1]: 'hs1' duplicates routes[0].pool[0]",
    ),
    (
        _set("routes", [{"match": {"colour": "red"}, "homeserver": "hs1"}]),
        "routes[0].match: unknown matcher 'colour'",
    ),
    (
        _set("routes", [{"match": {"user_id": "("}, "homeserver": "hs1"}]),
        "routes[0].match.user_id: invalid regex '('",
    ),
    (_set("routes", [{"url": "x", "homeserver": "hs1"}]), "routes[0]: unknown key 'url'"),
    (
        _set("routes", [{"homeserver": "hs1", "pool": ["hs2"]}]),
        "routes[0]: give exactly one of 'homeserver' or 'pool'",
    ),
    (_delete("default_homeserver"), "default_homeserver: required"),
    (_set("default_homeserver", "hs3"), "default_homeserver: unknown homeserver 'hs3'"),
    (_set("sso", {"default": "sso"}), "sso.default: unknown homeserver 'sso'"),
    (_delete("public_baseurl"), "public_baseurl: required"),
    (
        _set("public_baseurl", "https://m.example.com#x"),
        "public_baseurl: 'https://m.example.com#x' has a fragment",
    ),
    (_set("mode", "teleport"), "mode: unknown mode 'teleport'; allowed: redirect, proxy, auto"),
    (_set("listen", 8080), "listen: must be a mapping (keys: host, port, x_forwarded), not int"),
    (
        _set("listen.address", "::"),
        "listen: unknown key 'address'; allowed keys: host, port, x_forwarded",
    ),
    (_set("listen.host", ""), "listen.host: must be an IP address or host name"),
    (_set("listen.port", 70000), "listen.port: must be a port number (0-65535), not 70000"),
    (_set("listen.port", "8080"), "listen.port: must be a port number (0-65535), not '8080'"),
    (_set("listen.x_forwarded", "yes"), "listen.x_forwarded: must be true or false, not 'yes'"),
    (_set("server_name", "not a name"), "server_name: must be a server name such as example.com"),
    (
        _set("proxy_user_agents", 5),
        "proxy_user_agents: must be a regular expression or a list of them, not int",
    ),
    (_set("proxy_user_agents", "("), "proxy_user_agents: invalid regex '('"),
    (_set("proxy_user_agents", ["Dart/", "["]), "proxy_user_agents[1]: invalid regex '['"),
    (_set("max_body_size", 0), "max_body_size: must be a positive whole number of bytes, not 0"),
    (
        _set("max_body_size", "64k"),
        "max_body_size: must be a positive whole number of bytes, not '64k'",
    ),
    (
        _set("timeouts", 5),
        "timeouts: must be a mapping (keys: connect, total, client_api, long_poll_margin), not int",
    ),
    (
        _set("timeouts", {"read": 1}),
        "timeouts: unknown key 'read'; allowed keys: client_api, connect, long_poll_margin, total",
    ),
    (
        _set("timeouts", {"connect": "1s"}),
        "timeouts.connect: must be a number of seconds, not '1s'",
    ),
    (_set("timeouts", {"total": 0}), "timeouts.total: must be more than 0 seconds, not 0"),
    # A rate is not a number of seconds.
    (
        _set("directory", {"per_second": 0}),
        "directory.per_second: must be a number above 0 (how many a second), not 0",
    ),
    (
        _set("gateway", {"resolve_per_second": "1/s"}),
        "gateway.resolve_per_second: must be a number above 0 (how many a second), not '1/s'",
    ),
    (
        _set("clients", {"records_per_second": float("inf")}),
        "clients.records_per_second: must be a number above 0 (how many a second), not inf",
    ),
    # A timeout that never fires would let a hanging homeserver hang the client too.
    (
        _set("timeouts", {"total": float("inf")}),
        "timeouts.total: must be a number of seconds, not inf",
    ),
    (
        _set("timeouts", {"connect": float("nan")}),
        "timeouts.connect: must be a number of seconds, not nan",
    ),
    (
        _set("timeouts", {"total": 10**400}),
        "timeouts.total: must be a number of seconds, not 1000",
    ),
    (
        _set("timeouts", {"connect": True}),
        "timeouts.connect: must be a number of seconds, not True",
    ),
    (
        _set("timeouts", {"connect": 10, "total": 5}),
        "timeouts.connect: 10s is longer than timeouts.total (5s)",
    ),
    (_set("discovery_cache_ttl", -1), "discovery_cache_ttl: must not be negative, not -1"),
    (
        _set("discovery_cache_ttl", "10s"),
        "discovery_cache_ttl: must be a number of seconds, not '10s'",
    ),
    (
        _set("discovery_cache_ttl", float("nan")),
        "discovery_cache_ttl: must be a number of seconds, not nan",
    ),
    (_set("metrics", "on"), "metrics: must be false, 'public' or a mapping (keys: host, port)"),
    (_set("metrics", True), "metrics: true is no longer accepted"),
    (_set("metrics", {"host": "127.0.0.1"}), "metrics.port: required"),
    (_set("metrics", {"port": 9101, "path": "/m"}), "metrics: unknown key 'path'"),
    (_set("metrics", {"port": 8080}), "metrics.port: 8080 is listen.port too"),
]


@pytest.mark.parametrize(("change", "message"), CASES, ids=[m.split(":")[0] for _, m in CASES])
def test_error_messages(change: Callable[[dict[str, Any]], None], message: str) -> None:
    raw = copy.deepcopy(VALID)
    change(raw)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        PortalConfig.from_config(raw)


@pytest.mark.parametrize("raw", [None, [], "mode: redirect"])
def test_not_a_mapping(raw: object) -> None:
    with pytest.raises(ValueError, match=r"^config: must be a mapping of keys to values"):
        PortalConfig.from_config(raw)


def test_load_reports_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(
        ValueError, match=f"^{re.escape(str(missing))}: cannot read the config file"
    ):
        PortalConfig.load(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("homeservers: [unclosed\n")
    with pytest.raises(ValueError, match=f"^{re.escape(str(broken))}: not valid YAML"):
        PortalConfig.load(broken)
    good = tmp_path / "good.yaml"
    good.write_text(
        "public_baseurl: https://m.example.com\n"
        "homeservers: {hs1: {base_url: 'https://hs1.example.com'}}\n"
        "default_homeserver: hs1\n"
    )
    assert PortalConfig.load(good).routes.rules == ()


def _with_directory(tmp_path: Path, **top: Any) -> dict[str, Any]:
    raw = copy.deepcopy(VALID)
    for name in ("hs1", "hs2"):
        token = tmp_path / f"{name}.token"
        token.write_text(f"syt_{name}_token\n")
        token.chmod(0o600)
        raw["homeservers"][name]["server_name"] = f"{name}.example.com"
        raw["homeservers"][name]["admin_token_file"] = str(token)
    raw.update(top)
    return raw


def test_a_server_name_that_bypasses_the_directory_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = PortalConfig.from_config(_with_directory(tmp_path, server_name="hs1.example.com"))
    assert config.directory.enabled
    assert (
        "server_name: hs1.example.com is the server name of homeserver hs1: every bare name "
        "is routed there as @name:hs1.example.com and the account directory is never asked"
    ) in caplog.text


@pytest.mark.parametrize("server_name", [None, "example.com"])
def test_a_server_name_no_homeserver_has_or_none_is_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, server_name: str | None
) -> None:
    raw = _with_directory(tmp_path)
    if server_name is not None:
        raw["server_name"] = server_name
    PortalConfig.from_config(raw)
    assert "server_name" not in caplog.text
