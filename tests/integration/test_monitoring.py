"""``contrib/prometheus/rules.yml`` and ``contrib/grafana/dashboard.json`` on a real
Prometheus (Debian's), scraping a real portal (the directory, the gateway and the shared
state on) and a real Synapse with the module (its metrics listener), after real traffic:
every rule group is healthy, every expression (rules, panels, variables) evaluates and names
only metrics the portal or the module exports, every recording rule and every panel has
series."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import yaml

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess
from tests.harness.constants import PASSWORD, REPO_ROOT
from tests.harness.portal import homeserver_entries, placement_secrets
from tests.harness.prometheus import PrometheusProcess, prometheus_binary
from tests.harness.services import redis_server
from tests.harness.synapse import METRICS_LISTENER, StartSynapseWithListeners, module_entry

pytestmark = [pytest.mark.integration, pytest.mark.once]

RULES = REPO_ROOT / "contrib" / "prometheus" / "rules.yml"
DASHBOARD = REPO_ROOT / "contrib" / "grafana" / "dashboard.json"
#: What Grafana puts for a variable set to "All" (the dashboard's ``allValue``).
ALL = ".*"
LOGIN = "/_matrix/client/v3/login"
PORTAL_JOB = "synapse-base-cs-url-portal"


class Watched:
    def __init__(
        self, prometheus: PrometheusProcess, portal: PortalProcess, metrics_urls: list[str]
    ) -> None:
        self.prometheus = prometheus
        self.portal = portal
        self.metrics_urls = metrics_urls


def exported_names(metrics_urls: list[str]) -> set[str]:
    """Every series name the processes export (from their ``# TYPE`` lines), whether or not
    a series has been counted yet."""
    names = {"up"}
    for url in metrics_urls:
        text = requests.get(url, timeout=30).text
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
            base = name.removesuffix("_total")
            if kind == "counter":
                names |= {base + "_total", base + "_created"}
            elif kind == "histogram":
                names |= {base + "_bucket", base + "_count", base + "_sum"}
            else:
                names.add(name)
    return names


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def login(portal: PortalProcess, user: str, **headers: str) -> str:
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}}
    body["password"] = PASSWORD
    answer = requests.post(
        portal.url + LOGIN, json=body, headers=headers, allow_redirects=False, timeout=30
    )
    if answer.status_code == 307:
        answer = requests.post(answer.headers["Location"], json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


@pytest.fixture(scope="module")
def watched(
    tmp_path_factory: pytest.TempPathFactory,
    start_synapse_with_listeners: StartSynapseWithListeners,
) -> Iterator[Watched]:
    prometheus_binary()
    redis = redis_server()
    workdir = tmp_path_factory.mktemp("monitoring")
    secrets = placement_secrets(workdir, ["hs1"])
    (workdir / "portal").mkdir()
    portal = PortalProcess({}, workdir / "portal")  # its port, for the module's config
    placement = {"portal_url": portal.url, "secret_file": str(secrets["hs1"])}
    hs, ports = start_synapse_with_listeners(
        "mon1.test",
        modules=[module_entry(placement=placement)],
        listeners={"metrics": METRICS_LISTENER},
        extra_config={
            "enable_registration": True,
            "enable_registration_without_verification": True,
        },
    )
    portal.config.update(
        {
            "public_baseurl": "https://portal.example.com",
            "mode": "auto",
            "client_api": "proxy",
            "homeservers": homeserver_entries({"hs1": hs}, placement_secret_file=secrets),
            "default_homeserver": "hs1",
            "directory": {"burst": 1000},
            "state": {"backend": "redis", "url": f"redis://127.0.0.1:{redis.port}/0"},
        }
    )
    prometheus: PrometheusProcess | None = None
    try:
        portal.start()
        synapse_metrics = f"127.0.0.1:{ports['metrics']}/_synapse/metrics"
        prometheus = PrometheusProcess(
            {PORTAL_JOB: [f"127.0.0.1:{portal.port}"], "synapse": [synapse_metrics]}, [RULES]
        ).start()
        traffic(hs, portal)
        yield Watched(prometheus, portal, [portal.url + "/metrics", "http://" + synapse_metrics])
    finally:
        if prometheus is not None:
            prometheus.stop()
        portal.stop()
        redis.cleanup()


def traffic(hs: SynapseProcess, portal: PortalProcess) -> None:
    """A few seconds of everything the rules count: an account made (the module asks the
    portal), logins redirected and proxied (the directory finds the account; the module
    answers base_cs_url), a refused login, signed-in requests through the gateway."""
    hs.register_user("watched", PASSWORD)
    for _ in range(4):
        token = login(portal, "watched")
        login(portal, "watched", **{"User-Agent": "Dart/3.5 (dart:io)"})
        refused = requests.post(portal.url + LOGIN, json={"type": "m.login.password"}, timeout=30)
        assert refused.status_code == 400
        register = requests.post(
            portal.url + "/_matrix/client/v3/register",
            json={"username": "newcomer"},
            allow_redirects=False,
            timeout=30,
        )
        assert register.status_code == 401, register.text  # through the gateway: its first step
        whoami = requests.get(
            portal.url + "/_matrix/client/v3/account/whoami",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert whoami.status_code == 200, whoami.text
        time.sleep(1.5)


def wait_for_series(prometheus: PrometheusProcess, expr: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not prometheus.query(expr):
        assert time.monotonic() < deadline, f"no series for {expr}:\n{prometheus.logs()}"
        time.sleep(1)


def test_every_rule_group_is_healthy(watched: Watched) -> None:
    wait_for_series(watched.prometheus, "synapse_base_cs_url:portal_logins:rate5m")
    groups = watched.prometheus.api("rules")["groups"]
    assert {g["name"] for g in groups} == {
        "synapse_base_cs_url_recording",
        "synapse_base_cs_url_alerts",
    }
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, its query with every variable set to "All"), for every query."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"].replace("$instance", ALL).replace("$homeserver", ALL))
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def names_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(synapse_base_cs_url[_:][a-z0-9_:]+|up)\b", expr))


def test_every_expression_evaluates_and_names_only_exported_metrics(watched: Watched) -> None:
    exported = exported_names(watched.metrics_urls)
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    expressions = [(rule.get("alert") or rule["record"], rule["expr"]) for rule in rules()]
    for name, expr in expressions + panel_queries():
        watched.prometheus.query(expr)  # parses and evaluates, or raises
        names = names_in(expr)
        assert names, name
        unknown = names - exported - recorded
        assert not unknown, (name, unknown)


def test_every_panel_and_variable_has_series_after_real_traffic(watched: Watched) -> None:
    wait_for_series(watched.prometheus, "synapse_base_cs_url:portal_logins:rate5m")
    for _, expr in panel_queries():
        wait_for_series(watched.prometheus, expr)
    for variable in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if variable["type"] == "query":
            metric, label = re.fullmatch(
                r"label_values\((.+), (\w+)\)", variable["definition"]
            ).groups()  # type: ignore[union-attr]
            values = watched.prometheus.query(f"count by ({label}) ({metric})")
            assert values and all(v["metric"].get(label) for v in values), variable["name"]


def test_every_recording_rule_has_series_after_real_traffic(watched: Watched) -> None:
    wait_for_series(watched.prometheus, "synapse_base_cs_url:portal_logins:rate5m")
    for rule in rules():
        if "record" in rule:
            wait_for_series(watched.prometheus, rule["record"])


def test_the_portal_and_its_shared_state_are_up_and_nothing_fires(watched: Watched) -> None:
    wait_for_series(watched.prometheus, f'up{{job="{PORTAL_JOB}"}}')
    assert watched.prometheus.query(f'up{{job="{PORTAL_JOB}"}} == 1')
    assert watched.prometheus.query("synapse_base_cs_url_portal_state_up == 1")
    assert watched.prometheus.query(
        'synapse_base_cs_url_portal_homeserver_up{homeserver="hs1"} == 1'
    )
    assert watched.prometheus.api("alerts")["alerts"] == []
