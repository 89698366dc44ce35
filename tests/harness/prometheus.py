"""A throwaway Prometheus (Debian's ``prometheus``) on a free loopback port: it scrapes the
given targets every second and evaluates the given rule files every second; its HTTP API
answers the tests' queries."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
import yaml

from synapse_base_cs_url._dev.throwaway_synapse import free_port, terminate
from tests.harness.services import required_binary


def prometheus_binary() -> str:
    return required_binary("prometheus", "prometheus")


class PrometheusProcess:
    def __init__(self, jobs: Mapping[str, Sequence[str]], rule_files: Sequence[Path]) -> None:
        """``jobs``: scrape job name -> its targets (``host:port/path``: path ``/metrics``
        unless given)."""
        self.binary = prometheus_binary()
        self.dir = Path(tempfile.mkdtemp(prefix="prometheus-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        scrape_configs = []
        for job, targets in jobs.items():
            by_path: dict[str, list[str]] = {}
            for target in targets:
                address, _, path = target.partition("/")
                by_path.setdefault("/" + (path or "metrics"), []).append(address)
            for i, (path, addresses) in enumerate(by_path.items()):
                scrape_configs.append(
                    {
                        "job_name": job if i == 0 else f"{job}-{i}",
                        "metrics_path": path,
                        "static_configs": [{"targets": addresses}],
                    }
                )
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(f) for f in rule_files],
            "scrape_configs": scrape_configs,
        }
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = self.dir / "prometheus.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> PrometheusProcess:
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.logs()}")
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus was not ready within {timeout}s:\n{self.logs()}")

    def api(self, path: str, **params: str) -> Any:
        """``/api/v1/<path>``'s ``data``; an AssertionError with Prometheus's error if the
        query failed."""
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = answer.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-5000:] if self.log.exists() else ""

    def stop(self) -> None:
        terminate(self._proc, grace=10)
        shutil.rmtree(self.dir, ignore_errors=True)
