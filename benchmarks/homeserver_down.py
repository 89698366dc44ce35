"""What a hung homeserver costs the logins of the others, side by side in one run.

    python benchmarks/homeserver_down.py [--logins 40] [--timeout 1]

Three real Synapses with the module (the portal's directory asks their modules: no admin
token). Two portals with the same config, in redirect mode: ``healthy`` reaches all three;
``one-hung`` reaches the third at an address that accepts connections and never answers (a
homeserver stopped with ``SIGSTOP`` looks the same to the portal). ``one-hung`` first sees
the third fail ``upstream.failures_to_down`` times (each lookup waiting
``directory.timeout``); then logins by users of the first homeserver, each new to both
portals (an uncached lookup, asking every homeserver), alternate between the two portals,
one right after the other. Reported: the p50 of each, and the median of the per-pair
differences (target: the hung homeserver costs < 50 ms once marked down). Before the
per-homeserver health, every such login waited the whole ``directory.timeout``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from portal_loadgen import median, percentile  # noqa: E402

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess  # noqa: E402
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess  # noqa: E402

LOGIN = "/_matrix/client/v3/login"
PASSWORD = "benchmark password"
MODULE = "synapse_base_cs_url.BaseCsUrlModule"
NAMES = ("h1", "h2", "h3")
MS = 1000


class BlackHole:
    """Accepts connections and never answers (nor closes them)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        self._listener.close()
        for connection in self._held:
            connection.close()


def login(conn: http.client.HTTPConnection, user: str) -> float:
    body = json.dumps({"type": "m.login.password", "user": user, "password": PASSWORD})
    started = time.perf_counter()
    conn.request("POST", LOGIN, body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    if response.status != 307:
        raise RuntimeError(f"login {user}: {response.status}")
    return elapsed


def connection(url: str) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--logins", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=1.0, help="directory.timeout")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-down-"))
    secret_files = {}
    homeservers = {}
    for name in NAMES:
        secret_files[name] = workdir / f"{name}.secret"
        secret_files[name].write_text(secrets.token_hex(24))
        (workdir / name).mkdir()
        placement = {
            "portal_url": "http://127.0.0.1:9",  # nothing here asks the portal
            "secret_file": str(secret_files[name]),
            "when_portal_unreachable": "allow",
        }
        homeservers[name] = SynapseProcess(
            f"{name}.test",
            workdir=workdir / name,
            modules=[{"module": MODULE, "config": {"placement": placement}}],
        )
    hole = BlackHole()

    def config(hung: bool) -> dict[str, Any]:
        entries = {
            name: {
                "base_url": hs.base_url,
                "server_name": hs.server_name,
                "placement_secret_file": str(secret_files[name]),
            }
            for name, hs in homeservers.items()
        }
        if hung:
            entries["h3"]["proxy_url"] = f"http://127.0.0.1:{hole.port}"
        return {
            "public_baseurl": "https://portal.example.com",
            "mode": "redirect",
            "homeservers": entries,
            "default_homeserver": "h1",
            "directory": {"timeout": args.timeout, "burst": 100_000, "per_second": 1000},
        }

    portals = {
        label: PortalProcess(config(label == "one-hung"), workdir / label)
        for label in ("healthy", "one-hung")
    }
    try:
        with ThreadPoolExecutor(len(NAMES)) as pool:
            list(pool.map(lambda hs: hs.start(), homeservers.values()))
        users = [f"user{i}" for i in range(args.logins + 3)]
        for user in users:
            homeservers["h1"].register_user(user, PASSWORD)
        for label, portal in portals.items():
            (workdir / label).mkdir(exist_ok=True)
            portal.start()
        conns = {label: connection(portal.url) for label, portal in portals.items()}
        warm = [login(conns["one-hung"], user) for user in users[:3]]
        print(f"one-hung: its first {len(warm)} lookups waited {[round(w, 2) for w in warm]} s")
        times: dict[str, list[float]] = {label: [] for label in portals}
        for i, user in enumerate(users[3:]):
            for label in ("healthy", "one-hung") if i % 2 else ("one-hung", "healthy"):
                times[label].append(login(conns[label], user))
        pairs = median([b - a for a, b in zip(times["healthy"], times["one-hung"], strict=True)])
        print(f"{args.logins} uncached logins of h1's users, each on both portals:")
        for label, values in times.items():
            print(
                f"  {label:9} p50 {percentile(values, 50) * MS:7.2f} ms  "
                f"p99 {percentile(values, 99) * MS:7.2f} ms"
            )
        print(
            f"  one homeserver hung costs, median of pairs: {pairs * MS:+.2f} ms "
            f"(target < 50 ms; directory.timeout {args.timeout:g} s)"
        )
    finally:
        for portal in portals.values():
            portal.stop()
        for hs in homeservers.values():
            hs.stop()
        hole.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
