"""Login latency with the module vs. a twin Synapse without it, measured side by side.

    python -m benchmarks.login_latency [--rounds 15] [--logins 40]

Two real Synapse processes with identical config (SQLite, loopback), one with
``BaseCsUrlModule``. Rounds alternate which twin goes first; each round times ``--logins``
password logins per twin over a kept-alive connection. Reported: p50/p99 per twin, the
ratio of p50s per round and the median of those ratios (1.00 = no cost). The machine is
shared and noisy, so only the in-run ratio means anything.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from pathlib import Path

from synapse_base_cs_url.throwaway_synapse import SynapseProcess

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


def run(rounds: int, logins: int) -> dict[str, object]:
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
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--logins", type=int, default=40)
    args = parser.parse_args()
    print(json.dumps(run(args.rounds, args.logins), indent=2))


if __name__ == "__main__":
    main()
