"""A process's resident memory, sampled in the background while a test loads it."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path


def rss(pid: int) -> int:
    """Resident memory of ``pid`` now, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) * 1024


class PeakMemory:
    """Samples a process's resident memory in the background; ``peak`` is the most seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = self.now()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def now(self) -> int:
        return rss(self.pid)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.02)

    def stop(self) -> int:
        """Growth over the baseline, in bytes."""
        self._stop.set()
        self._thread.join(5)
        return self.peak - self.baseline
