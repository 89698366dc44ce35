"""Login latency with the module vs. a twin Synapse without it, measured side by side.

    python -m benchmarks.login_latency [--runs 5] [--rounds 10] [--logins 40]

Each run starts two fresh Synapse processes with identical config (SQLite, loopback), one
with ``BaseCsUrlModule``, and alternates password logins between them one by one over
kept-alive connections. A run's ratio is the median over its rounds of p50(module) /
p50(twin); the result is the median over runs (1.00 = no cost). Fresh pairs per run average
out what differs between two processes for reasons of their own (placement, files). The
machine is shared and noisy, so only these in-run ratios mean anything.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from pathlib import Path
from typing import Any

from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess

REPO_ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "benchmark password"
MODULE = {
    "module": "synapse_base_cs_url.BaseCsUrlModule",
    "config": {"base_cs_url": "https://cs.example.com"},
}
SHARED_CONFIG = {"public_baseurl": "https://public.example.com/"}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class LoginClient:
    """Password logins over one kept-alive HTTP connection; returns seconds per login."""

    def __init__(self, hs: SynapseProcess) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", hs.port, timeout=30)
        self.body = json.dumps(
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "bench"},
                "password": PASSWORD,
            }
        ).encode()

    def login(self) -> tuple[float, dict[str, object]]:
        start = time.perf_counter()
        self.conn.request(
            "POST", "/_matrix/client/v3/login", self.body, {"Content-Type": "application/json"}
        )
        response = self.conn.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            raise RuntimeError(f"login failed: {response.status} {payload[:200]!r}")
        return elapsed, json.loads(payload)


def run(rounds: int, logins: int) -> dict[str, Any]:
    twins = {
        "with module": SynapseProcess(
            "bench.test",
            modules=[MODULE],
            extra_config=SHARED_CONFIG,
            extra_pythonpath=[str(REPO_ROOT)],
        ),
        "without": SynapseProcess("bench.test", extra_config=SHARED_CONFIG),
    }
    try:
        for hs in twins.values():
            hs.start()
            hs.register_user("bench", PASSWORD)
        clients = {name: LoginClient(hs) for name, hs in twins.items()}
        # Sanity: the module is active on one twin only, and warm both up.
        assert "base_cs_url" in clients["with module"].login()[1]
        assert "base_cs_url" not in clients["without"].login()[1]
        for client in clients.values():
            for _ in range(logins):
                client.login()
        samples: dict[str, list[float]] = {name: [] for name in twins}
        ratios = []
        names = list(clients)
        for r in range(rounds):
            # Logins alternate between the twins one by one (ABAB..., then BABA... next
            # round), so drift on this shared machine hits both equally.
            round_times: dict[str, list[float]] = {name: [] for name in names}
            for i in range(2 * logins):
                name = names[(i + r) % 2]
                round_times[name].append(clients[name].login()[0])
            for name in names:
                samples[name].extend(round_times[name])
            ratios.append(
                statistics.median(round_times["with module"])
                / statistics.median(round_times["without"])
            )
        return {
            name: {
                "p50_ms": round(statistics.median(s) * 1000, 3),
                "p99_ms": round(percentile(s, 0.99) * 1000, 3),
                "n": len(s),
            }
            for name, s in samples.items()
        } | {
            "ratio_p50_median_of_rounds": round(statistics.median(ratios), 4),
            "ratio_p50_all_samples": round(
                statistics.median(samples["with module"]) / statistics.median(samples["without"]),
                4,
            ),
            "round_ratios": [round(x, 3) for x in ratios],
        }
    finally:
        for hs in twins.values():
            hs.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--logins", type=int, default=40)
    args = parser.parse_args()
    runs = [run(args.rounds, args.logins) for _ in range(args.runs)]
    for i, result in enumerate(runs, 1):
        print(
            f"run {i}: p50 {result['with module']['p50_ms']} ms with module, "
            f"{result['without']['p50_ms']} ms without; p99 {result['with module']['p99_ms']} / "
            f"{result['without']['p99_ms']} ms; ratio {result['ratio_p50_median_of_rounds']}"
        )
    ratios = [r["ratio_p50_median_of_rounds"] for r in runs]
    print(
        f"median ratio over {len(runs)} runs (module / twin, p50): {statistics.median(ratios):.4f}"
    )


if __name__ == "__main__":
    main()
