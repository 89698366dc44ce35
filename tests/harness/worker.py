"""A real Synapse main process plus one generic worker, on PostgreSQL and Redis.

The main process is the harness's :class:`SynapseProcess`, extended with the settings a
worker deployment needs (see Synapse's ``synapse/config/workers.py`` and the workers docs):

- ``database``: PostgreSQL (workers cannot share SQLite);
- ``redis: {enabled: true, ...}``: the replication stream between processes;
- a ``replication`` HTTP listener and ``instance_map: {main: {host, port}}`` pointing at it,
  which workers use for requests only the main process may serve (e.g. registering the
  device of a login).

The worker is ``python -m synapse.app.generic_worker -c homeserver.yaml -c worker.yaml``:
the shared config plus a worker file with ``worker_app``, ``worker_name``,
``worker_listeners`` (a ``client`` HTTP listener, which includes ``/login``) and
``worker_log_config``. The same ``modules:`` apply to both, as the shared config holds them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from synapse_base_cs_url._dev.throwaway_synapse import (
    JsonDict,
    LoopbackSynapse,
    SynapseProcess,
    SynapseStartupError,
    free_port,
)
from tests.harness.services import PostgresServer, RedisServer

MAIN_TITLE = "Synapse main process"
WORKER_TITLE = "Synapse generic worker"


class DeploymentError(RuntimeError):
    """Some part of the deployment did not start; the message carries the logs."""


def add_worker_support(main: SynapseProcess, replication_port: int | None = None) -> int:
    """Give ``main`` (not yet started) a replication listener and ``instance_map``.

    ``database`` and ``redis`` are up to the caller (``extra_config``). Returns the
    replication port.
    """
    port = replication_port or free_port()
    main.config["listeners"].append(
        {
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": False,
            "x_forwarded": False,
            "resources": [{"names": ["replication"], "compress": False}],
        }
    )
    main.config["instance_map"] = {"main": {"host": "127.0.0.1", "port": port}}
    return port


class GenericWorker(LoopbackSynapse):
    """One ``synapse.app.generic_worker`` process sharing ``main``'s homeserver.yaml."""

    def __init__(
        self,
        main: SynapseProcess,
        name: str = "worker1",
        *,
        resources: Sequence[str] = ("client",),
        extra_pythonpath: Sequence[str] = (),
        python: str = sys.executable,
    ) -> None:
        super().__init__(
            main.workdir,
            main.workdir / f"{name}.log",
            main.workdir / f"{name}.console.log",
            python=python,
            extra_pythonpath=extra_pythonpath,
        )
        self.main = main
        self.name = name
        self.server_name = f"{main.server_name} ({name})"
        self.config_path = self.workdir / f"{name}.yaml"
        self.config: JsonDict = {
            "worker_app": "synapse.app.generic_worker",
            "worker_name": name,
            "worker_listeners": [
                {
                    "type": "http",
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": list(resources), "compress": False}],
                }
            ],
            "worker_log_config": str(self._write_log_config()),
        }

    def _write_log_config(self) -> Path:
        """The main process's log config, writing to this worker's own file instead."""
        main_log_config_path = Path(self.main.config["log_config"])
        log_config: dict[str, Any] = yaml.safe_load(main_log_config_path.read_text())
        for handler in log_config.get("handlers", {}).values():
            if "filename" in handler:
                handler["filename"] = str(self.log_path)
        path = self.workdir / f"{self.name}.log.yaml"
        path.write_text(yaml.safe_dump(log_config))
        return path

    def command(self) -> list[str]:
        self.config_path.write_text(yaml.safe_dump(self.config))
        return [
            "-m", "synapse.app.generic_worker",
            "-c", str(self.main.config_path), "-c", str(self.config_path),
        ]  # fmt: skip

    def start(self, timeout: float = 60.0) -> GenericWorker:
        """Start the worker (the main process must be up) and wait for its ``/versions``."""
        self._start_and_wait(timeout)
        return self


class WorkerDeployment:
    """PostgreSQL + Redis + a Synapse main process + one generic worker serving ``client``.

    Use as a context manager, or call :meth:`start` and then :meth:`cleanup` (always).
    """

    def __init__(
        self,
        server_name: str,
        *,
        modules: Sequence[JsonDict],
        workdir: Path,
        extra_config: dict[str, Any] | None = None,
        extra_pythonpath: Sequence[str] = (),
    ) -> None:
        self._server_name = server_name
        self._modules = list(modules)
        self._workdir = workdir
        self._extra_config = dict(extra_config or {})
        self._extra_pythonpath = list(extra_pythonpath)
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.main: SynapseProcess | None = None
        self.worker: GenericWorker | None = None

    def start(self) -> WorkerDeployment:
        """Start everything, or clean up and raise with every log that may explain why."""
        try:
            return self._start()
        except Exception as e:
            sections = self.log_sections()
            self.cleanup()
            # A startup error carries its own process's log already.
            if isinstance(e, SynapseStartupError) and e.synapse is self.main:
                sections = [s for s in sections if s[0] != MAIN_TITLE]
            if isinstance(e, SynapseStartupError) and e.synapse is self.worker:
                sections = [s for s in sections if not s[0].startswith(WORKER_TITLE)]
            text = "\n".join(f"===== {title} =====\n{log}" for title, log in sections)
            raise DeploymentError(f"{type(e).__name__}: {e}\n{text}") from e

    def _start(self) -> WorkerDeployment:
        # Assigned before starting, so that a failed start is still cleaned up.
        self.redis = RedisServer()
        self.redis.start()
        self.postgres = PostgresServer()
        self.postgres.start()
        main = SynapseProcess(
            self._server_name,
            modules=self._modules,
            extra_config={
                "database": self.postgres.synapse_database_config(),
                "redis": self.redis.synapse_redis_config(),
                **self._extra_config,
            },
            workdir=self._workdir,
            extra_pythonpath=self._extra_pythonpath,
        )
        add_worker_support(main)
        self.main = main
        # The worker needs the schema the main process creates, so one after the other.
        main.start()
        self.worker = GenericWorker(main, extra_pythonpath=self._extra_pythonpath)
        self.worker.start()
        return self

    def cleanup(self) -> None:
        for service in (self.worker, self.main):
            if service is not None:
                service.stop()
        for server in (self.redis, self.postgres):
            if server is not None:
                server.cleanup()

    def __enter__(self) -> WorkerDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def log_sections(self) -> list[tuple[str, str]]:
        """(title, text) for every process's log, for a failure report."""
        sections = []
        if self.worker is not None:
            sections.append((f"{WORKER_TITLE} {self.worker.name}", self.worker.logs(12000)))
        if self.main is not None:
            sections.append((MAIN_TITLE, self.main.logs(12000)))
        if self.postgres is not None:
            sections.append(("PostgreSQL", self.postgres.logs()))
        if self.redis is not None:
            sections.append(("Redis", self.redis.logs()))
        return sections
