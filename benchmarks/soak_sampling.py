"""The soak's samples: every process's RSS and file descriptors, and p50/p99 and errors per
kind of request since the last sample."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

from portal_loadgen import percentile
from soak_deployment import Deployment, rss_and_fds
from soak_record import Outcome, Record


class Sampler:
    def __init__(self, d: Deployment, record: Record, every: float) -> None:
        self.d = d
        self.record = record
        self.every = every
        self.started = time.monotonic()
        self.samples: list[dict[str, Any]] = []
        self._seen = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def fds(self) -> dict[str, int]:
        out = {}
        for label, pids in self.d.processes().items():
            got = rss_and_fds(pids)
            if got is not None:
                out[label] = got[1]
        return out

    def sample(self) -> dict[str, Any]:
        processes = {}
        for label, pids in self.d.processes().items():
            got = rss_and_fds(pids)
            if got is not None:
                processes[label] = {"rss_mb": round(got[0], 1), "fds": got[1], "pid": pids[0]}
        with self.record.lock:
            fresh = self.record.outcomes[self._seen :]
            self._seen = len(self.record.outcomes)
        kinds: dict[str, Any] = {}
        by_kind: dict[str, list[Outcome]] = defaultdict(list)
        for o in fresh:
            by_kind[o.kind].append(o)
        for kind, outcomes in by_kind.items():
            seconds = [o.seconds for o in outcomes if o.ok]
            errors: dict[str, int] = defaultdict(int)
            for o in outcomes:
                if not o.ok:
                    errors[str(o.status)] += 1
            kinds[kind] = {
                "count": len(outcomes),
                "p50_ms": round(percentile(seconds, 50) * 1000, 1) if seconds else None,
                "p99_ms": round(percentile(seconds, 99) * 1000, 1) if seconds else None,
                "errors": dict(errors),
            }
        entry = {"t": round(self.elapsed(), 1), "processes": processes, "kinds": kinds}
        self.samples.append(entry)
        return entry

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.every):
            entry = self.sample()
            done = sum(k["count"] for k in entry["kinds"].values())
            errors = sum(sum(k["errors"].values()) for k in entry["kinds"].values())
            portal_rss = [
                f"{label} {p['rss_mb']:.0f} MB/{p['fds']} fds"
                for label, p in entry["processes"].items()
                if label.startswith("portal")
            ]
            print(
                f"[{entry['t']:7.1f} s] {done} requests, {errors} errors; " + ", ".join(portal_rss),
                flush=True,
            )
