"""The latency proxy mode adds to a login, over logging in at Synapse directly.

    python benchmarks/portal_proxy.py [--logins 400] [--bcrypt-rounds 4] [--compare-with DIR]

One throwaway Synapse with the module, one portal in proxy mode in front of it, one client
with a keep-alive connection to each. Logins alternate (direct, via portal, via portal,
direct, ...) so both see the same Synapse at the same moment; every login is a real password
login that creates a device. Reported: p50 and p99 of each, the difference, and the median of
the per-pair differences (target: the portal adds < 2 ms at p50).

``--bcrypt-rounds 12`` is Synapse's default (the throwaway Synapse uses 4 unless told): the
password check then dominates a login, as it does in production. ``--compare-with DIR`` also
runs the portal of another checkout (the directory holding its ``synapse_base_cs_url``) in
front of the same Synapse, interleaved with the others, so two versions of the portal are
compared side by side in one run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from portal_loadgen import cpu_seconds, percentile  # noqa: E402
from side_by_side import (  # noqa: E402
    LABELS,
    OTHER,
    THIS,
    add_compare_with,
    added,
    portal_versions,
    round_order,
    timed,
)

from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess  # noqa: E402

LOGIN_PATH = "/_matrix/client/v3/login"
PASSWORD = "benchmark password"


def login(conn: http.client.HTTPConnection, body: bytes) -> float:
    return timed(conn, "POST", LOGIN_PATH, body=body, headers={"Content-Type": "application/json"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--logins", type=int, default=400, help="logins per path")
    parser.add_argument("--bcrypt-rounds", type=int, default=4, help="Synapse's: 12")
    add_compare_with(parser)
    args = parser.parse_args()

    hs = SynapseProcess("bench.localhost", extra_pythonpath=[str(HERE.parent)])
    hs.config["modules"] = [
        {"module": "synapse_base_cs_url.BaseCsUrlModule", "config": {"base_cs_url": hs.base_url}}
    ]
    hs.config["bcrypt_rounds"] = args.bcrypt_rounds
    workdir = Path(tempfile.mkdtemp(prefix="bench-portal-proxy-"))
    config = {
        "public_baseurl": "https://matrix.example.com",
        "mode": "proxy",
        "homeservers": {"hs": {"base_url": hs.base_url}},
        "default_homeserver": "hs",
    }
    portals = portal_versions(config, workdir, args.compare_with)
    try:
        hs.start()
        hs.register_user("bench", PASSWORD)
        for portal in portals.values():
            portal.start()
        body = json.dumps(
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "bench"},
                "password": PASSWORD,
            }
        ).encode()
        conns = {"direct": http.client.HTTPConnection("127.0.0.1", hs.port, timeout=60)}
        for name, portal in portals.items():
            conns[name] = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=60)
        for _ in range(20):  # warm-up: connections, caches, the portal's upstream pool
            for conn in conns.values():
                login(conn, body)
        names = list(conns)
        times: dict[str, list[float]] = {name: [] for name in names}
        cpu_before = {name: cpu_seconds(p.pid) for name, p in portals.items()}
        for i in range(args.logins):
            for name in round_order(names, i):
                times[name].append(login(conns[name], body))
        ms = 1000
        d50, d99 = (percentile(times["direct"], q) * ms for q in (50, 99))
        print(
            f"{args.logins} password logins each way, interleaved, keep-alive connections, "
            f"bcrypt_rounds {args.bcrypt_rounds}:\n"
            f"  {'':28s}{'p50':>10s}{'p99':>10s}{'added p50':>11s}{'pairs':>9s}{'CPU/login':>11s}\n"
            f"  {'Synapse directly':28s}{d50:8.2f}ms{d99:8.2f}ms"
        )
        for name, portal in portals.items():
            p50, p99 = (percentile(times[name], q) * ms for q in (50, 99))
            more, pairs = added(times, name, "direct")
            cpu = (cpu_seconds(portal.pid) - cpu_before[name]) / args.logins * ms
            print(
                f"  {'via ' + LABELS[name]:28s}{p50:8.2f}ms{p99:8.2f}ms{more * ms:9.2f}ms"
                f"{pairs * ms:7.2f}ms{cpu:9.2f}ms"
            )
        print(
            "  (added p50: p50 via the portal minus p50 direct; pairs: median of per-pair "
            "differences; target < 2 ms)"
        )
        if OTHER in portals:
            _, pairs = added(times, THIS, OTHER)
            print(f"  this portal - the --compare-with one, median of pairs: {pairs * ms:+.2f} ms")
    finally:
        for portal in portals.values():
            portal.stop()
        hs.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
