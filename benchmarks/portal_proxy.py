"""The latency proxy mode adds to a login, over logging in at Synapse directly.

    python benchmarks/portal_proxy.py [--logins 400]

One throwaway Synapse with the module, one portal in proxy mode in front of it, one client
with a keep-alive connection to each. Logins alternate (direct, via portal, via portal,
direct, ...) so both see the same Synapse at the same moment; every login is a real password
login that creates a device. Reported: p50 and p99 of each, the difference, and the median of
the per-pair differences (target: the portal adds < 2 ms at p50).
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from portal_loadgen import cpu_seconds, median, percentile  # noqa: E402

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess  # noqa: E402
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess  # noqa: E402

LOGIN_PATH = "/_matrix/client/v3/login"
PASSWORD = "benchmark password"


def login(conn: http.client.HTTPConnection, body: bytes) -> float:
    started = time.perf_counter()
    conn.request("POST", LOGIN_PATH, body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"login failed: {response.status} {data[:200]!r}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--logins", type=int, default=400, help="logins per path")
    args = parser.parse_args()

    hs = SynapseProcess("bench.localhost", extra_pythonpath=[str(HERE.parent)])
    hs.config["modules"] = [
        {"module": "synapse_base_cs_url.BaseCsUrlModule", "config": {"base_cs_url": hs.base_url}}
    ]
    workdir = Path(tempfile.mkdtemp(prefix="bench-portal-proxy-"))
    portal = PortalProcess(
        {
            "public_baseurl": "https://matrix.example.com",
            "mode": "proxy",
            "homeservers": {"hs": {"base_url": hs.base_url}},
            "default_homeserver": "hs",
        },
        workdir,
    )
    try:
        hs.start()
        hs.register_user("bench", PASSWORD)
        portal.start()
        body = json.dumps(
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "bench"},
                "password": PASSWORD,
            }
        ).encode()
        direct = http.client.HTTPConnection("127.0.0.1", hs.port, timeout=30)
        proxied = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=30)
        for _ in range(20):  # warm-up: connections, caches, the portal's upstream pool
            login(direct, body)
            login(proxied, body)
        times: dict[str, list[float]] = {"direct": [], "portal": []}
        portal_cpu_before = cpu_seconds(portal.pid)
        for i in range(args.logins):
            order = ("direct", "portal") if i % 2 == 0 else ("portal", "direct")
            for name in order:
                times[name].append(login(direct if name == "direct" else proxied, body))
        portal_cpu = (cpu_seconds(portal.pid) - portal_cpu_before) / args.logins
        deltas = [p - d for p, d in zip(times["portal"], times["direct"], strict=True)]
        ms = 1000
        d50, d99 = percentile(times["direct"], 50) * ms, percentile(times["direct"], 99) * ms
        p50, p99 = percentile(times["portal"], 50) * ms, percentile(times["portal"], 99) * ms
        print(
            f"{args.logins} password logins each way, interleaved, keep-alive connections:\n"
            f"  {'':24s}{'p50':>9s}{'p99':>9s}\n"
            f"  {'Synapse directly':24s}{d50:7.2f}ms{d99:7.2f}ms\n"
            f"  {'via the portal (proxy)':24s}{p50:7.2f}ms{p99:7.2f}ms\n"
            f"  {'added by the portal':24s}{p50 - d50:7.2f}ms{p99 - d99:7.2f}ms"
            f"   (target: < 2 ms at p50)\n"
            f"  median of per-pair differences: {median(deltas) * ms:.2f}ms\n"
            f"  portal CPU time per proxied login: {portal_cpu * ms:.2f}ms"
        )
    finally:
        portal.stop()
        hs.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
