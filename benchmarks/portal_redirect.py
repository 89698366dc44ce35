"""Redirect throughput of the portal vs a minimal Twisted server that always answers 307.

    python benchmarks/portal_redirect.py [--rounds 15] [--seconds 1.5] [--connections 16]
                                         [--compare-with DIR]

Both servers run on CPU 0 (``taskset``), the load generator on CPU 1, in the same run and
with the same load: interleaved rounds (portal, minimal, portal, minimal, ...), each round a
closed loop of ``--connections`` keep-alive connections POSTing a real login body. The
portal parses the body, applies four routes (user-id regex, address regex, localpart regex,
a hash pool), answers the 307, logs the login and updates its metrics; the minimal server
answers a fixed 307 without looking at the body. Reported: the median throughput of each
and the ratio (target: portal >= 80% of minimal). ``--compare-with DIR`` also runs the portal
of another checkout, on the same core, in the same rounds: the two versions' throughput and
the median of their per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from portal_loadgen import build_request, cpu_seconds, median, run_load  # noqa: E402
from side_by_side import (  # noqa: E402
    LABELS,
    OTHER,
    THIS,
    add_compare_with,
    portal_versions,
    round_order,
)

from synapse_base_cs_url._dev.throwaway_synapse import free_port, terminate  # noqa: E402

SERVER_CPU = "0"
LOADGEN_CPU = 1
LOGIN_PATH = "/_matrix/client/v3/login"

MINIMAL_SERVER = """
import sys
from twisted.internet import reactor
from twisted.web import resource, server

class Redirect(resource.Resource):
    isLeaf = True
    def render(self, request):
        request.setResponseCode(307)
        request.setHeader(b"Location", b"https://hs1.example.com/_matrix/client/v3/login")
        request.setHeader(b"Content-Length", b"0")
        return b""

class NoFormRequest(server.Request):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._parsePOSTFormSubmission = False

class QuietSite(server.Site):
    def log(self, request):
        pass

site = QuietSite(Redirect())
if sys.argv[2] == "minimal-noform":
    site.requestFactory = NoFormRequest
reactor.listenTCP(int(sys.argv[1]), site, interface="127.0.0.1")
reactor.run()
"""

PORTAL_CONFIG = {
    "public_baseurl": "https://matrix.example.com",
    "mode": "redirect",
    "homeservers": {
        "hs1": {"base_url": "https://hs1.example.com"},
        "hs2": {"base_url": "https://hs2.example.com"},
        "hs3": {"base_url": "https://hs3.example.com"},
    },
    "routes": [
        {"name": "hs2-ids", "match": {"user_id": "@.*:hs2\\.example\\.com"}, "homeserver": "hs2"},
        {"name": "dept2", "match": {"address": ".*@dept2\\.example\\.com"}, "homeserver": "hs2"},
        {"name": "ops", "match": {"localpart": "ops-.*"}, "homeserver": "hs3"},
        {"name": "pool", "pool": ["hs1", "hs2", "hs3"], "strategy": "hash"},
    ],
    "default_homeserver": "hs1",
    "server_name": "example.com",
}

BODY = json.dumps(
    {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "correct horse battery staple",
        "initial_device_display_name": "Benchmark",
    }
).encode()


def wait_for(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--connections", type=int, default=16)
    add_compare_with(parser)
    args = parser.parse_args()

    os.sched_setaffinity(0, {LOADGEN_CPU})
    workdir = Path(tempfile.mkdtemp(prefix="bench-portal-redirect-"))
    portals = portal_versions(PORTAL_CONFIG, workdir, args.compare_with, cpu=int(SERVER_CPU))
    ports = {"minimal": free_port(), "minimal-noform": free_port()}
    minimals = {
        name: subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, sys.executable, "-c", MINIMAL_SERVER, str(port), name]
        )
        for name, port in ports.items()
    }
    try:
        for portal in portals.values():
            portal.start()
        for port in ports.values():
            wait_for(port)
        ports |= {name: portal.port for name, portal in portals.items()}
        pids = {name: portal.pid for name, portal in portals.items()}
        pids |= {name: p.pid for name, p in minimals.items()}
        names = [*portals, "minimal", "minimal-noform"]
        requests = {
            name: build_request("127.0.0.1", ports[name], LOGIN_PATH, BODY, "bench")
            for name in names
        }
        for name in names:  # warm-up
            run_load("127.0.0.1", ports[name], requests[name], seconds=1, connections=16)
        rates: dict[str, list[float]] = {name: [] for name in names}
        per_cpu: dict[str, list[float]] = {name: [] for name in names}
        for round_no in range(1, args.rounds + 1):
            for name in round_order(names, round_no):
                cpu_before = cpu_seconds(pids[name])
                result = run_load(
                    "127.0.0.1",
                    ports[name],
                    requests[name],
                    seconds=args.seconds,
                    connections=args.connections,
                )
                cpu = cpu_seconds(pids[name]) - cpu_before
                assert set(result.statuses) == {307}, (name, result.statuses)
                rates[name].append(result.rate)
                per_cpu[name].append(result.requests / cpu)
            print(
                f"round {round_no:2d}  "
                + "  ".join(
                    f"{name} {rates[name][-1]:5.0f} req/s {per_cpu[name][-1]:5.0f} req/CPU-s"
                    for name in names
                ),
                flush=True,
            )

        def ratio(values: dict[str, list[float]], portal: str, baseline: str) -> float:
            pairs = zip(values[portal], values[baseline], strict=True)
            return median([p / b for p, b in pairs])

        print(
            f"\n{args.rounds} interleaved rounds x {args.seconds:g}s, {args.connections} "
            f"keep-alive connections, servers on 1 core (CPU {SERVER_CPU}), medians:\n"
            f"  {'':42s}{'wall-clock':>14s}{'per server CPU-s':>20s}"
        )
        labelled = [(name, f"{LABELS[name]} (parse, route, 307)") for name in portals]
        for name, label in (
            *labelled,
            ("minimal", "minimal fixed 307 (Twisted default)"),
            ("minimal-noform", "minimal fixed 307, no form parsing"),
        ):
            print(
                f"  {label:42s}{median(rates[name]):9.0f} req/s"
                f"{median(per_cpu[name]):13.0f} req/CPU-s"
            )
        for version in portals:
            for baseline in ("minimal", "minimal-noform"):
                print(
                    f"  {version:5s} / {baseline:34s}{ratio(rates, version, baseline):14.1%}"
                    f"{ratio(per_cpu, version, baseline):20.1%}   (target >= 80%)"
                )
        if OTHER in portals:
            print(
                f"  {THIS:5s} / {OTHER:34s}{ratio(rates, THIS, OTHER):14.1%}"
                f"{ratio(per_cpu, THIS, OTHER):20.1%}   (median of per-round ratios)"
            )
    finally:
        for portal in portals.values():
            portal.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        for proc in minimals.values():
            terminate(proc, grace=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
