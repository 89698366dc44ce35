"""The portal's processes and connections: ``workers: 2`` (both answer, a killed worker is
replaced, one scrape counts every login), reload on SIGHUP, drain on SIGTERM with logins in
flight, and slow clients that trickle their headers."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from tests.harness.clients import password_body
from tests.harness.fake_servers import SlowHomeserver
from tests.harness.memory import PeakMemory, rss
from tests.harness.portal import Homeservers, portal_config

# The portal's own processes and connections, whatever answers behind it: the same with
# either Synapse, so run once (against the newest).
pytestmark = [pytest.mark.integration, pytest.mark.once]

LOGIN = "/_matrix/client/v3/login"


def login_status(portal: PortalProcess, user: str = "alice") -> int:
    """A redirected login on a new connection (so the kernel may pick any worker)."""
    with requests.Session() as session:
        result = session.post(
            portal.url + LOGIN, json=password_body(user), timeout=30, allow_redirects=False
        )
    return result.status_code


def location(portal: PortalProcess, user: str) -> str:
    result = requests.post(
        portal.url + LOGIN, json=password_body(user), timeout=30, allow_redirects=False
    )
    assert result.status_code == 307, result.text
    return str(result.headers["Location"])


def logins_counted(portal: PortalProcess) -> float:
    metrics = requests.get(portal.url + "/metrics", timeout=30).text
    return sum(
        float(value)
        for value in re.findall(
            r"^synapse_base_cs_url_portal_logins_total\{.*\} (\S+)$", metrics, re.M
        )
    )


def worker_pids(portal: PortalProcess) -> dict[int, int]:
    """The newest pid of each worker, from the parent's log."""
    pids: dict[int, int] = {}
    for number, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", portal.logs()):
        pids[int(number)] = int(pid)
    return pids


@pytest.fixture
def start(homeservers: Homeservers, tmp_path: Path) -> Iterator[Any]:
    started: list[PortalProcess] = []

    def run(label: str, config: dict[str, Any] | None = None, **overrides: Any) -> PortalProcess:
        named = {"hs1": homeservers.hs1, "hs2": homeservers.hs2, "plain": homeservers.plain}
        workdir = tmp_path / label
        workdir.mkdir()
        portal = PortalProcess({**portal_config(named, **overrides), **(config or {})}, workdir)
        started.append(portal)
        return portal.start()

    yield run
    for portal in started:
        portal.stop()


def test_two_workers_share_the_port_and_one_scrape_counts_both(start: Any) -> None:
    portal = start("workers", workers=2)
    deadline = time.monotonic() + 30
    while not all(f"worker {n}: portal listening" in portal.logs() for n in (1, 2)):
        assert time.monotonic() < deadline, portal.logs()
        time.sleep(0.1)
    # Both accept from one queue: whichever is free takes the next connection, so logins
    # sent at once reach both (sent one by one, an idle worker may win every time).
    sent = 0
    answered: set[int] = set()
    with ThreadPoolExecutor(8) as pool:
        while answered != {1, 2}:
            assert sent < 400, portal.logs()
            assert set(pool.map(lambda _: login_status(portal), range(40))) == {307}
            sent += 40
            log = portal.logs()
            answered = {n for n in (1, 2) if re.search(rf"worker {n}: login route=", log)}
    assert logins_counted(portal) == sent

    # Kill one worker: the parent starts another, logins keep succeeding, and the dead
    # worker's logins still count.
    victim = worker_pids(portal)[1]
    os.kill(victim, signal.SIGKILL)
    statuses = []
    while worker_pids(portal)[1] == victim:
        assert time.monotonic() < deadline + 30, portal.logs()
        statuses.append(login_status(portal))
        time.sleep(0.05)
    assert set(statuses) <= {307}
    while (
        "worker 1: portal listening" not in portal.logs().split(f"pid {worker_pids(portal)[1]}")[-1]
    ):
        time.sleep(0.1)
    for _ in range(10):
        assert login_status(portal) == 307
    assert logins_counted(portal) == sent + len(statuses) + 10
    assert "worker 1 exited with -9: starting another" in portal.logs()

    portal.send_signal(signal.SIGTERM)
    assert portal.wait(30) == 0


def test_sighup_reloads_a_changed_route_and_keeps_a_broken_file_out(
    start: Any, homeservers: Homeservers
) -> None:
    portal = start("reload")
    hs1, hs2 = homeservers.hs1.base_url, homeservers.hs2.base_url
    assert location(portal, "zed").startswith(hs1)
    named = {"hs1": homeservers.hs1, "hs2": homeservers.hs2, "plain": homeservers.plain}
    changed = portal_config(
        named, routes=[{"name": "zed", "match": {"localpart": "zed"}, "homeserver": "hs2"}]
    )
    portal.rewrite_config(changed)
    portal.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while "reloaded" not in portal.logs():
        assert time.monotonic() < deadline, portal.logs()
        time.sleep(0.05)
    assert location(portal, "zed").startswith(hs2)

    portal.config_path.write_text("routes: [unclosed\n")
    portal.send_signal(signal.SIGHUP)
    while "reload: invalid config" not in portal.logs():
        assert time.monotonic() < deadline, portal.logs()
        time.sleep(0.05)
    error = next(line for line in portal.logs().splitlines() if "reload: invalid config" in line)
    assert "not valid YAML" in error
    assert "still serving the previous one" in error
    assert location(portal, "zed").startswith(hs2)  # nothing changed


def logins_in_flight(
    pool: ThreadPoolExecutor, portal: PortalProcess, slow: SlowHomeserver, count: int
) -> list[Future[requests.Response]]:
    """``count`` proxied logins, returned once every one of them waits on ``slow``."""
    before = slow.received
    futures = [
        pool.submit(requests.post, portal.url + LOGIN, json=password_body(f"u{i}"), timeout=60)
        for i in range(count)
    ]
    deadline = time.monotonic() + 20
    while slow.received < before + count:
        assert time.monotonic() < deadline, f"only {slow.received} reached the homeserver"
        time.sleep(0.02)
    return futures


def test_sigterm_lets_every_login_in_flight_finish(start: Any) -> None:
    slow = SlowHomeserver(delay=2.0)
    try:
        portal = start(
            "drain",
            {
                "mode": "proxy",
                "routes": [],
                "homeservers": {"slow": {"base_url": slow.url}},
                "default_homeserver": "slow",
                "shutdown_grace": 20,
            },
        )
        with ThreadPoolExecutor(50) as pool:
            futures = logins_in_flight(pool, portal, slow, 50)
            portal.send_signal(signal.SIGTERM)
            # Draining: new connections are no longer accepted.
            time.sleep(0.3)
            with pytest.raises(requests.ConnectionError):
                requests.get(portal.url + "/ready", timeout=5)
            results = [f.result() for f in futures]
        assert [r.status_code for r in results] == [200] * 50
        assert portal.wait(30) == 0
        assert "draining: 50 request(s) under way" in portal.logs()
    finally:
        slow.close()


def trickle_until_closed(attackers: list[socket.socket], seconds: float) -> list[socket.socket]:
    """Send each connection a header byte every half second until the portal closes it (a
    byte now and then keeps Twisted's idle timer from firing, not the header deadline);
    return those still open after ``seconds``."""
    deadline = time.monotonic() + seconds
    open_ = list(attackers)
    while open_ and time.monotonic() < deadline:
        still = []
        for sock in open_:
            try:
                sock.sendall(b"X")
                sock.setblocking(False)
                data = sock.recv(1)
                sock.setblocking(True)
            except BlockingIOError:
                sock.setblocking(True)
                still.append(sock)
                continue
            except OSError:
                continue  # reset by the portal
            if data:
                still.append(sock)
        open_ = still
        time.sleep(0.5)
    return open_


def test_connections_trickling_headers_are_closed_by_the_header_timeout(start: Any) -> None:
    portal = start(
        "slowloris",
        connections={"max": 5000, "header_timeout": 2, "idle_timeout": 60},
    )
    for _ in range(20):  # warm up what a login allocates once
        assert login_status(portal) == 307
    memory = PeakMemory(portal.pid)
    attackers: list[socket.socket] = []
    for _ in range(2000):
        sock = socket.create_connection(("127.0.0.1", portal.port), timeout=10)
        sock.sendall(b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n")
        attackers.append(sock)
    stop = threading.Event()
    statuses: list[int] = []

    def login_every_second() -> None:
        while not stop.is_set():
            statuses.append(login_status(portal))
            stop.wait(1)

    logger = threading.Thread(target=login_every_second)
    logger.start()
    try:
        open_ = trickle_until_closed(attackers, 30)
        assert not open_, f"{len(open_)} connections still open after 30 s"
    finally:
        stop.set()
        logger.join(30)
        for sock in attackers:
            sock.close()
    assert statuses and set(statuses) == {307}, statuses
    metrics = requests.get(portal.url + "/metrics", timeout=30).text
    assert (
        'synapse_base_cs_url_portal_connection_timeouts_total{deadline="header"} 2000.0' in metrics
    )
    time.sleep(1)
    memory.stop()
    before, after = memory.baseline, rss(portal.pid)
    # Every connection is gone, and what they held with them: the process keeps at most a
    # little of its freed heap (Python rarely hands freed memory back to the system).
    open_now = re.search(r"^synapse_base_cs_url_portal_open_connections (\S+)$", metrics, re.M)
    assert open_now is not None and float(open_now.group(1)) <= 1
    assert after - before < 16 * 1024 * 1024, (before, memory.peak, after)


def test_sighup_to_two_workers_leaves_logins_in_flight_alone(start: Any) -> None:
    slow = SlowHomeserver(delay=2.0)
    try:
        config = {
            "mode": "proxy",
            "routes": [],
            "homeservers": {"slow": {"base_url": slow.url}},
            "default_homeserver": "slow",
            "workers": 2,
        }
        portal = start("reload-in-flight", config)
        with ThreadPoolExecutor(20) as pool:
            futures = logins_in_flight(pool, portal, slow, 20)
            deadline = time.monotonic() + 20
            portal.rewrite_config({**portal.config, "metrics": False})
            portal.send_signal(signal.SIGHUP)  # to the parent, which passes it on
            results = [f.result() for f in futures]
        assert [r.status_code for r in results] == [200] * 20
        # Both workers reloaded: neither serves /metrics any more.
        while portal.logs().count("reloaded") < 2:
            assert time.monotonic() < deadline + 20, portal.logs()
            time.sleep(0.05)
        assert {
            requests.get(portal.url + "/metrics", timeout=30).status_code for _ in range(20)
        } == {404}
    finally:
        slow.close()


def test_an_idle_connection_is_closed_after_idle_timeout(start: Any) -> None:
    portal = start("idle", connections={"idle_timeout": 1})
    with socket.create_connection(("127.0.0.1", portal.port), timeout=10) as idle:
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed by the portal, not by the 10 s socket timeout
        assert time.monotonic() - started < 5
    # A connection that keeps asking is served.
    assert login_status(portal) == 307
