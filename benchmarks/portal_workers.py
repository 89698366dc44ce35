"""Redirect throughput with ``workers: 2`` vs ``workers: 1``.

    python benchmarks/portal_workers.py [--rounds 10] [--seconds 2] [--connections 32]

Two portals with the same routes (those of ``portal_redirect.py``): one process, and a parent
with two workers. The load generator runs on this machine too (it has 2 cores), so besides
requests per second each portal's throughput per CPU-second of all its processes is
reported: that is what extra cores buy where the load generator does not compete for them.
Rounds alternate between the two portals.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from portal_loadgen import build_request, cpu_seconds, median, run_load  # noqa: E402
from portal_redirect import BODY, LOGIN_PATH, PORTAL_CONFIG  # noqa: E402

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess  # noqa: E402


def pids(portal: PortalProcess) -> list[int]:
    """The portal's processes: the parent (or only process) and its workers."""
    workers = [int(p) for p in re.findall(r"worker \d+ started \(pid (\d+)\)", portal.logs())]
    return [portal.pid, *workers]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-portal-workers-"))
    portals = {}
    try:
        for count in (1, 2):
            (workdir / str(count)).mkdir()
            portals[count] = PortalProcess(
                {**PORTAL_CONFIG, "workers": count}, workdir / str(count)
            ).start()
        time.sleep(1)  # both workers listening
        requests = {
            count: build_request("127.0.0.1", p.port, LOGIN_PATH, BODY, "bench")
            for count, p in portals.items()
        }
        for count, portal in portals.items():  # warm-up
            run_load("127.0.0.1", portal.port, requests[count], seconds=1, connections=16)
        rates: dict[int, list[float]] = {1: [], 2: []}
        per_cpu: dict[int, list[float]] = {1: [], 2: []}
        for round_no in range(args.rounds):
            order = (1, 2) if round_no % 2 == 0 else (2, 1)
            for count in order:
                portal = portals[count]
                before = sum(cpu_seconds(pid) for pid in pids(portal))
                result = run_load(
                    "127.0.0.1",
                    portal.port,
                    requests[count],
                    seconds=args.seconds,
                    connections=args.connections,
                )
                cpu = sum(cpu_seconds(pid) for pid in pids(portal)) - before
                assert set(result.statuses) == {307}, result.statuses
                rates[count].append(result.rate)
                per_cpu[count].append(result.requests / cpu)
            print(
                f"round {round_no + 1:2d}  "
                + "  ".join(
                    f"workers {c}: {rates[c][-1]:5.0f} req/s {per_cpu[c][-1]:5.0f} req/CPU-s"
                    for c in (1, 2)
                ),
                flush=True,
            )
        ratio = median([b / a for a, b in zip(rates[1], rates[2], strict=True)])
        cpu_ratio = median([b / a for a, b in zip(per_cpu[1], per_cpu[2], strict=True)])
        print(
            f"\n{args.rounds} interleaved rounds x {args.seconds:g}s, {args.connections} "
            "keep-alive connections, medians:\n"
            f"  workers 1: {median(rates[1]):6.0f} req/s  {median(per_cpu[1]):6.0f} req/CPU-s\n"
            f"  workers 2: {median(rates[2]):6.0f} req/s  {median(per_cpu[2]):6.0f} req/CPU-s\n"
            f"  workers 2 / workers 1: {ratio:.2f}x req/s, {cpu_ratio:.2f}x req per CPU-second"
        )
    finally:
        for portal in portals.values():
            portal.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
