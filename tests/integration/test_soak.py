"""The soak (``benchmarks/soak.py``) in its short mode: the whole deployment (three Synapses,
two portal replicas on Redis behind nginx), every kind of traffic and every fault of the
hour-long run, compressed into a few minutes. It tests the soak itself (that it runs, judges
and draws) as much as the portal: its verdict must pass, and its figures must hold what the
hour-long run's record shows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.constants import REPO_ROOT
from tests.harness.nginx import nginx_binary
from tests.harness.services import INSTALL_HINT, skip_or_fail

pytestmark = [pytest.mark.integration, pytest.mark.once]

SOAK = REPO_ROOT / "benchmarks" / "soak.py"
MINUTES = 1.5


def test_a_short_soak_loses_nothing(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        skip_or_fail(f"the soak needs redis-server. {INSTALL_HINT}")
    nginx_binary()
    out = tmp_path / "out"
    args = ["--minutes", str(MINUTES), "--sample", "10", "--users", "4", "--out", str(out)]
    run = subprocess.run(
        [sys.executable, str(SOAK), *args],
        capture_output=True,
        text=True,
        timeout=MINUTES * 60 + 300,
        check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "VERDICT: PASS" in report
    figures = json.loads((out / "soak.json").read_text())
    assert figures["passed"] is True
    faults = [(f["target"], f["name"]) for f in figures["faults"]]
    assert faults == [
        ("h3", "stopped"),
        ("h2", "hung"),
        ("redis", "restarted"),
        ("portal-b", "replica killed"),
        ("portals", "reloaded"),
    ]
    # Every kind of traffic ran, and succeeded at least once.
    seen = {
        kind for sample in figures["samples"] for kind, k in sample["kinds"].items() if k["count"]
    }
    assert seen >= {
        "login-localpart", "login-email", "login-mxid-proxy", "login-localpart-proxy",
        "register", "reset", "whoami", "send", "sync", "upload", "download", "vanish",
    }  # fmt: skip
    # The faults were felt (a soak whose faults change nothing would prove nothing) ...
    assert figures["failed"], "no request failed during the faults"
    # ... and every failure fell in a window that excuses it.
    assert all(f["excused"] for f in figures["failed"])
    processes = figures["samples"][-1]["processes"]
    assert {"portal-a", "portal-b", "h1", "h2", "h3", "nginx", "redis"} <= set(processes)
    assert (out / "soak.png").stat().st_size > 10_000
