"""Where a real portal process serves ``/metrics``: not on the public port by default; on a
listener of its own with ``metrics: {host, port}``, one process or ``workers: 2`` (every
worker's answer counts the whole portal); ``metrics: true`` stops it at startup.

The homeservers are never contacted (redirect mode answers 307 by itself): no Synapse."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import free_port
from tests.harness.clients import password_body

pytestmark = pytest.mark.integration

LOGINS = "synapse_base_cs_url_portal_logins_total"
CONFIG: dict[str, Any] = {
    "public_baseurl": "https://portal.example.com",
    "mode": "redirect",
    "homeservers": {"hs1": {"base_url": "https://hs1.example.com"}},
    "default_homeserver": "hs1",
}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    started: list[PortalProcess] = []

    def run(label: str, **overrides: Any) -> PortalProcess:
        workdir = tmp_path / label
        workdir.mkdir()
        portal = PortalProcess({**CONFIG, **overrides}, workdir)
        started.append(portal)
        return portal

    yield run
    for portal in started:
        portal.stop()


def login(portal: PortalProcess) -> None:
    with requests.Session() as session:  # a new connection: any worker may take it
        result = session.post(
            portal.url + "/_matrix/client/v3/login",
            json=password_body("alice"),
            timeout=30,
            allow_redirects=False,
        )
    assert result.status_code == 307, result.text


def logins_counted(text: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{LOGINS}\{{.*\}} (\S+)$", text, re.M))


def wait_for_log(portal: PortalProcess, text: str, count: int = 1) -> None:
    deadline = time.monotonic() + 30
    while portal.logs().count(text) < count:
        assert time.monotonic() < deadline, portal.logs()
        time.sleep(0.05)


def test_by_default_the_public_port_has_no_metrics(start: Any) -> None:
    portal = start("default")
    del portal.config["metrics"]  # the throwaway portal's own default is 'public'
    portal.start()
    login(portal)
    answer = requests.get(portal.url + "/metrics", timeout=30)
    assert answer.status_code == 404
    assert answer.json()["errcode"] == "M_UNRECOGNIZED"
    assert "metrics on" not in portal.logs()


def test_a_metrics_listener_serves_metrics_and_the_public_port_does_not(start: Any) -> None:
    port = free_port("127.0.0.1")
    portal = start("own", metrics={"host": "127.0.0.1", "port": port}).start()
    for _ in range(3):
        login(portal)
    assert requests.get(portal.url + "/metrics", timeout=30).status_code == 404
    wait_for_log(portal, f"metrics on http://127.0.0.1:{port}/metrics")
    with requests.Session() as scraper:  # kept alive across scrapes, and across the drain
        answer = scraper.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        assert logins_counted(answer.text) == 3
        assert scraper.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 404
        # The drain does not wait on the scraper's open connection.
        portal.send_signal(signal.SIGTERM)
        assert portal.wait(15) == 0
    assert "portal stopped" in portal.logs()


def worker_pids(portal: PortalProcess) -> dict[int, int]:
    return {
        int(n): int(pid)
        for n, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", portal.logs())
    }


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """The worker ``pid`` stopped (SIGSTOP): the other takes every new connection, since
    both accept from the one socket their parent opened."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def scrape(port: int) -> requests.Response:
    with requests.Session() as scraper:  # a new connection
        return scraper.get(f"http://127.0.0.1:{port}/metrics", timeout=30)


def test_two_workers_share_the_metrics_listener_and_each_counts_both(start: Any) -> None:
    port = free_port("127.0.0.1")
    portal = start("workers", workers=2, metrics={"port": port}).start()
    wait_for_log(portal, f"metrics on http://127.0.0.1:{port}/metrics", count=2)
    pids = worker_pids(portal)
    # 5 logins routed by each worker...
    for number in (1, 2):
        with paused(pids[3 - number]):
            for _ in range(5):
                login(portal)
    assert len(re.findall(r"worker 1: login route=", portal.logs())) == 5
    assert len(re.findall(r"worker 2: login route=", portal.logs())) == 5
    # ...and each worker, answering a scrape alone, counts all 10.
    for number in (1, 2):
        with paused(pids[3 - number]):
            answer = scrape(port)
        assert answer.status_code == 200
        assert logins_counted(answer.text) == 10
    assert requests.get(portal.url + "/metrics", timeout=30).status_code == 404
    portal.send_signal(signal.SIGTERM)
    assert portal.wait(30) == 0
    # Once the portal has stopped, so has its metrics listener.
    with pytest.raises(requests.ConnectionError):
        scrape(port)


def test_metrics_true_stops_the_portal_at_startup_saying_what_to_write(start: Any) -> None:
    portal = start("true", metrics=True)
    with pytest.raises(RuntimeError) as e:
        portal.start()
    assert "invalid config" in str(e.value)
    assert "metrics: true is no longer accepted" in str(e.value)
    assert "'metrics: public'" in str(e.value)
