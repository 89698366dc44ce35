"""A throwaway portal process (``python -m synapse_base_cs_url portal --config ...``) on a
free loopback port, for the demo, the tests and the benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from synapse_base_cs_url._dev.throwaway_synapse import free_port, terminate

#: The directory holding the ``synapse_base_cs_url`` package, put on the child's PYTHONPATH.
PACKAGE_PARENT = Path(__file__).resolve().parents[2]


class PortalProcess:
    """``config`` is portal.yaml; ``listen`` gets ``host`` and a free port. Without a
    ``metrics`` key it gets ``metrics: public``, since tests read ``<url>/metrics`` (a portal
    serves no ``/metrics`` on its public listener unless told to)."""

    def __init__(
        self,
        config: dict[str, Any],
        workdir: Path,
        *,
        host: str = "127.0.0.1",
        python: str = sys.executable,
        cpu: int | None = None,
        package_parent: Path = PACKAGE_PARENT,
    ) -> None:
        self.port = free_port(host)
        self.host = host
        self.url = f"http://{host}:{self.port}"
        # Extra listen settings (e.g. x_forwarded) are kept; host and port are ours.
        listen = {**config.get("listen", {}), "host": host, "port": self.port}
        # Another checkout's directory runs that version of the portal (benchmarks compare).
        self._package_parent = package_parent
        self.config = self._with_metrics({**config, "listen": listen})
        self.workdir = workdir
        self.config_path = workdir / "portal.yaml"
        self.log_path = workdir / "portal.log"
        self._python = python
        self._cpu = cpu
        self._proc: subprocess.Popen[bytes] | None = None

    def _with_metrics(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` with ``metrics: public`` if it has no ``metrics`` key. Not for another
        checkout's portal (benchmarks compare): one older than ``metrics: public`` would
        refuse it (and serves ``/metrics`` publicly without being told)."""
        if "metrics" in config or self._package_parent != PACKAGE_PARENT:
            return config
        return {**config, "metrics": "public"}

    def start(self, timeout: float = 20.0) -> PortalProcess:
        self.config_path.write_text(yaml.safe_dump(self.config))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self._package_parent), env.get("PYTHONPATH")) if p
        )
        argv = [
            self._python,
            "-m",
            "synapse_base_cs_url",
            "portal",
            "--config",
            str(self.config_path),
        ]
        if self._cpu is not None:
            argv = ["taskset", "-c", str(self._cpu), *argv]
        with self.log_path.open("ab") as log:
            # Run from the work directory: ``python -m`` puts the current directory ahead of
            # PYTHONPATH, so run from a checkout it would import that checkout's package, not
            # ``package_parent``'s (a side-by-side benchmark would compare a version with
            # itself).
            self._proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"portal exited with {self._proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"portal did not answer /health within {timeout}s:\n{self.logs()}")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def stop(self) -> None:
        terminate(self._proc, grace=10)

    def send_signal(self, signum: int) -> None:
        """E.g. ``SIGHUP`` (reload portal.yaml) or ``SIGTERM`` (drain and stop)."""
        assert self._proc is not None
        self._proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit; its exit status."""
        assert self._proc is not None
        return self._proc.wait(timeout)

    def rewrite_config(self, config: dict[str, Any]) -> None:
        """Replace portal.yaml (``listen`` kept, ``metrics`` as in the constructor), e.g.
        before a ``SIGHUP``."""
        self.config = self._with_metrics({**config, "listen": self.config["listen"]})
        self.config_path.write_text(yaml.safe_dump(self.config))

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
