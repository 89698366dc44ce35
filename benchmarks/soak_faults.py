"""The soak's faults, each recorded as a window with the file descriptors before and after."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from soak_deployment import Deployment
from soak_record import Fault, Record
from soak_sampling import Sampler


class Faults:
    def __init__(self, d: Deployment, record: Record, sampler: Sampler) -> None:
        self.d = d
        self.record = record
        self.sampler = sampler

    @contextmanager
    def fault(self, name: str, target: str) -> Iterator[None]:
        fault = Fault(name, target, time.monotonic(), fds_before=self.sampler.fds())
        with self.record.lock:
            self.record.faults.append(fault)
        print(f"[{self.sampler.elapsed():7.1f} s] fault: {target} {name}", flush=True)
        try:
            yield
        finally:
            fault.end = time.monotonic()
            print(f"[{self.sampler.elapsed():7.1f} s] fault over: {target} {name}", flush=True)

    def stopped(self, name: str, seconds: float, stop: threading.Event) -> None:
        hs = self.d.homeservers[name]
        with self.fault("stopped", name):
            hs.stop()
            stop.wait(seconds)
            hs.start()

    def hung(self, name: str, seconds: float, stop: threading.Event) -> None:
        hs = self.d.homeservers[name]
        with self.fault("hung", name):
            os.kill(hs.pid, signal.SIGSTOP)
            try:
                stop.wait(seconds)
            finally:
                os.kill(hs.pid, signal.SIGCONT)

    def redis_restarted(self, seconds: float, stop: threading.Event) -> None:
        with self.fault("restarted", "redis"):
            self.d.redis.stop()
            stop.wait(seconds)
            self.d.redis.start()

    def replica_killed(self, label: str, seconds: float, stop: threading.Event) -> None:
        replica = self.d.replicas[label]
        with self.fault("replica killed", f"portal-{label}"):
            replica.send_signal(signal.SIGKILL)
            replica.wait(10)
            stop.wait(seconds)
            replica.start()

    def reloaded(self) -> None:
        changed = {
            **self.d.config,
            "routes": [
                # A new rule for names nobody has yet; existing users stay where they live.
                {"name": "later", "match": {"localpart": "zz_.*"}, "homeserver": "h2"},
                *self.d.config["routes"],
            ],
        }
        with self.fault("reloaded", "portals"):
            for replica in self.d.replicas.values():
                replica.rewrite_config(changed)
                replica.send_signal(signal.SIGHUP)

    def schedule(self, minutes: float) -> list[tuple[float, Callable[[threading.Event], None]]]:
        """(seconds after the start, fault): spread over the first 80% of the run, the rest
        left calm to see everything settle."""
        total = minutes * 60
        outage = max(15.0, total * 0.06)
        return [
            (total * 0.10, lambda s: self.stopped("h3", outage, s)),
            (total * 0.25, lambda s: self.hung("h2", outage, s)),
            (total * 0.40, lambda s: self.redis_restarted(max(8.0, total * 0.02), s)),
            (total * 0.55, lambda s: self.replica_killed("b", max(8.0, total * 0.02), s)),
            (total * 0.70, lambda s: self.reloaded()),
        ]
