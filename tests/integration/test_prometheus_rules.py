"""``contrib/prometheus/rules.yml`` through Debian's ``promtool``: the file checks, and every
alert is unit-tested on input series (``promtool test rules``): it fires for the series
that should page someone, with the labels and the annotations an operator reads, and stays
quiet for the series beside them and before its ``for:`` has passed.

The series are written here, per alert; the expected annotations are the rule's own,
with its ``{{ $labels.x }}`` filled in (so the text is written once, in the rules)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.constants import REPO_ROOT
from tests.harness.services import required_binary

pytestmark = [pytest.mark.integration, pytest.mark.once]

RULES = REPO_ROOT / "contrib" / "prometheus" / "rules.yml"
PORTAL_JOB = "synapse-base-cs-url-portal"
P = "synapse_base_cs_url_portal_"

Series = list[tuple[str, str]]


def portal(metric: str, values: str, **labels: str) -> tuple[str, str]:
    """A series of the portal's (its scrape job's label added), and its samples."""
    return series(P + metric, values, job=PORTAL_JOB, **labels)


def series(name: str, values: str, **labels: str) -> tuple[str, str]:
    inside = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return f"{name}{{{inside}}}", values


def buckets(mode: str, counts: tuple[int, int, int, int]) -> Series:
    """A latency histogram's buckets (0.5 s, 2.5 s, 5 s, +Inf), each its rate a minute."""
    return [
        portal("login_duration_seconds_bucket", f"0+{n}x30", mode=mode, le=le)
        for le, n in zip(("0.5", "2.5", "5.0", "+Inf"), counts, strict=True)
    ]


LOGINS = "logins_total"
REJECTED = "rejected_requests_total"
GATEWAY = "client_api_requests_total"
LOOKUPS = "directory_lookups_total"
ASKS = "placement_asks_total"
FAIL_OPEN = "synapse_base_cs_url_fail_open_total"

#: Per alert: its input series (``promtool``'s notation, one sample a minute), when to
#: look, and the labels of each alert expected to fire then (beyond ``alertname``).
CASES: dict[str, dict[str, Any]] = {
    "SynapseBaseCsUrlPortalDown": {
        "series": [
            series("up", "1 1 0x10", job=PORTAL_JOB, instance="p1"),
            series("up", "1x12", job=PORTAL_JOB, instance="p2"),
        ],
        "at": "6m",
        "firing": [{"job": PORTAL_JOB, "instance": "p1"}],
    },
    "SynapseBaseCsUrlPortalErrors": {
        "series": [
            portal(
                LOGINS, "0+60x20", instance="p1", homeserver="h1", mode="redirect", status="307"
            ),
            portal(REJECTED, "0+12x20", instance="p1", errcode="M_UNAVAILABLE", status="503"),
            portal(
                LOGINS, "0+60x20", instance="p2", homeserver="h1", mode="redirect", status="307"
            ),
            portal(REJECTED, "0+1x20", instance="p2", errcode="M_UNAVAILABLE", status="503"),
            portal(REJECTED, "0+30x20", instance="p2", errcode="M_FORBIDDEN", status="403"),
        ],
        "at": "15m",
        "firing": [{"instance": "p1"}],
    },
    "SynapseBaseCsUrlHomeserverFailing": {
        "series": [
            portal(LOGINS, "0+60x20", homeserver="h1", mode="redirect", status="307"),
            portal(LOGINS, "0+60x20", homeserver="h2", mode="redirect", status="307"),
            portal(LOGINS, "0+30x20", homeserver="h2", mode="proxy", status="502"),
            portal(GATEWAY, "0+60x20", homeserver="h1", route="token", status="200"),
        ],
        "at": "15m",
        "firing": [{"homeserver": "h2"}],
    },
    "SynapseBaseCsUrlAllHomeserversFailing": {
        "series": [
            portal(LOGINS, "0+60x20", homeserver="h1", mode="proxy", status="200"),
            portal(LOGINS, "0+30x20", homeserver="h1", mode="proxy", status="504"),
            portal(GATEWAY, "0+30x20", homeserver="h2", route="token", status="502"),
            portal(GATEWAY, "0+60x20", homeserver="h2", route="token", status="200"),
        ],
        "at": "15m",
        "firing": [{}],
    },
    "SynapseBaseCsUrlHomeserverMarkedDown": {
        "series": [
            portal("homeserver_up", "1 1 0x10", instance="p1", homeserver="h3"),
            portal("homeserver_up", "1x12", instance="p1", homeserver="h1"),
        ],
        "at": "5m",
        "firing": [{"job": PORTAL_JOB, "instance": "p1", "homeserver": "h3"}],
    },
    "SynapseBaseCsUrlAdminTokenRefused": {
        "series": [
            portal("admin_token_ok", "1 1 0x5", instance="p1", homeserver="h2"),
            portal("admin_token_ok", "1x8", instance="p1", homeserver="h1"),
        ],
        "at": "3m",
        "firing": [{"job": PORTAL_JOB, "instance": "p1", "homeserver": "h2"}],
    },
    "SynapseBaseCsUrlDirectoryUnanswered": {
        "series": [
            portal(LOOKUPS, "0+60x30", instance="p1", source="homeservers", outcome="found"),
            portal(LOOKUPS, "0+10x30", instance="p1", source="homeservers", outcome="unanswered"),
            portal(LOOKUPS, "0+60x30", instance="p2", source="homeservers", outcome="found"),
        ],
        "at": "20m",
        "firing": [{"instance": "p1"}],
    },
    "SynapseBaseCsUrlSharedStateDown": {
        "series": [
            portal("state_up", "1 1 0x10", instance="p1"),
            portal("state_up", "1x12", instance="p2"),
        ],
        "at": "5m",
        "firing": [{"job": PORTAL_JOB, "instance": "p1"}],
    },
    "SynapseBaseCsUrlLoginsSlow": {
        # Redirected logins: 90% between 2.5 s and 5 s; proxied ones all under 0.5 s.
        "series": buckets("redirect", (10, 10, 100, 100)) + buckets("proxy", (100, 100, 100, 100)),
        "at": "20m",
        "firing": [{"mode": "redirect"}],
    },
    "SynapseBaseCsUrlModuleFailingOpen": {
        "series": [
            series(
                FAIL_OPEN,
                "0 0 0 1 1 1",
                server_name="hs1.test",
                endpoint="login",
                reason="hook_error",
            ),
            series(FAIL_OPEN, "0x5", server_name="hs2.test", endpoint="login", reason="hook_error"),
        ],
        "at": "4m",
        "firing": [{"server_name": "hs1.test", "reason": "hook_error"}],
    },
    "SynapseBaseCsUrlPlacementRefusedBurst": {
        "series": [
            portal(ASKS, "0+5x20", homeserver="h1", kind="name", outcome="refused"),
            portal(ASKS, "0+1x20", homeserver="h2", kind="name", outcome="refused"),
            portal(ASKS, "0+50x20", homeserver="h2", kind="name", outcome="allowed"),
        ],
        "at": "12m",
        "firing": [{"homeserver": "h1"}],
    },
    "SynapseBaseCsUrlPlacementForbidden": {
        "series": [
            portal(
                ASKS, "0 0 1 1 1", instance="p1", homeserver="-", kind="name", outcome="forbidden"
            ),
            portal(ASKS, "0+5x5", instance="p2", homeserver="h1", kind="name", outcome="allowed"),
        ],
        "at": "3m",
        "firing": [{"instance": "p1"}],
    },
}


def promtool() -> str:
    return required_binary("promtool", "prometheus")


def alerts() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def annotations(rule: dict[str, Any], labels: dict[str, str]) -> dict[str, str]:
    """The rule's annotations as Prometheus renders them for an alert with ``labels``."""

    def fill(text: str) -> str:
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)

    return {key: fill(text) for key, text in rule["annotations"].items()}


def run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_rules_check() -> None:
    out = run(["check", "rules", str(RULES)], REPO_ROOT)
    assert "SUCCESS" in out


def test_every_alert_has_a_case() -> None:
    assert set(CASES) == set(alerts())


def test_every_alert_fires_when_it_should_and_only_then(tmp_path: Path) -> None:
    rules = alerts()
    tests = []
    for name, case in CASES.items():
        rule = rules[name]
        severity = rule["labels"]["severity"]
        expected = [
            {
                "exp_labels": {**labels, "severity": severity},
                "exp_annotations": annotations(rule, labels),
            }
            for labels in case["firing"]
        ]
        checks = [
            # Not yet: the series were healthy at the start (or the `for:` has not passed).
            {"eval_time": "1m", "alertname": name, "exp_alerts": []},
            {"eval_time": case["at"], "alertname": name, "exp_alerts": expected},
        ]
        inputs = [{"series": s, "values": v} for s, v in case["series"]]
        tests.append(
            {"name": name, "interval": "1m", "input_series": inputs, "alert_rule_test": checks}
        )
    test_file = tmp_path / "rules.test.yml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests})
    )
    out = run(["test", "rules", str(test_file)], tmp_path)
    assert "SUCCESS" in out
