"""Throwaway PostgreSQL and Redis servers for tests that run Synapse workers.

Synapse workers need PostgreSQL (SQLite is single-process only) and Redis (replication).
Both come from Debian's packages (``.ci/install-services`` installs them); each test run
starts its own instances on loopback, on free ports, in a temp directory, and removes them
afterwards. Nothing here touches a system-wide PostgreSQL or Redis service.

PostgreSQL refuses to run as root, so when the tests run as root the server binaries are run
as the ``postgres`` system user (created by Debian's package) through ``runuser``.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from synapse_base_cs_url._dev.throwaway_synapse import free_port, terminate

INSTALL_HINT = (
    "Install them with `bash .ci/install-services` (as root: apt-get update && "
    "apt-get install -y postgresql redis-server nginx-light prometheus). CI sets "
    "SYNAPSE_BASE_CS_URL_REQUIRE_SERVICES=1 so that there these tests fail instead of being "
    "skipped."
)

#: Python packages Synapse needs for PostgreSQL and Redis (its ``postgres`` and ``redis``
#: extras), by import name -> what to pip install.
PYTHON_DEPS = {
    "psycopg2": "psycopg2-binary (or matrix-synapse[postgres])",
    "txredisapi": "matrix-synapse[redis]",
    "hiredis": "matrix-synapse[redis]",
}


class ServiceError(RuntimeError):
    """A throwaway server did not start; the message carries its log."""


def _tail(path: Path, max_chars: int = 8000) -> str:
    if not path.exists():
        return f"--- {path} (missing) ---"
    return f"--- {path} ---\n{path.read_text(errors='replace')[-max_chars:]}"


def postgres_bindir() -> Path | None:
    """The directory with initdb, pg_ctl and postgres: Debian's newest, else the PATH's."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")],
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for d in candidates:
        if all(os.access(Path(d) / b, os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return Path(d)
    return None


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run PostgreSQL + Redis + Synapse workers (empty: nothing)."""
    missing = []
    if postgres_bindir() is None:
        missing.append("PostgreSQL server binaries (initdb, pg_ctl, postgres; Debian: postgresql)")
    if shutil.which("redis-server") is None:
        missing.append("redis-server (Debian: redis-server)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing.append("the `postgres` system user (PostgreSQL cannot run as root)")
        if shutil.which("runuser") is None:
            missing.append("runuser (util-linux), to run PostgreSQL as `postgres`")
    for module, pip_name in PYTHON_DEPS.items():
        if importlib.util.find_spec(module) is None:
            missing.append(f"Python module {module} (pip install {pip_name})")
    problem = _txredisapi_problem()
    if problem:
        missing.append(problem)
    return missing


def _txredisapi_problem() -> str | None:
    """txredisapi 1.6 rewrote its factory; Synapse releases that do not cap it break on it.

    (Synapse 1.100's Redis replication fails at startup with "'super' object has no attribute
    'startedConnecting'"; newer Synapse requires txredisapi<1.6.0.)
    """
    try:
        installed = metadata.version("txredisapi")
        requires = metadata.requires("matrix-synapse") or []
    except metadata.PackageNotFoundError:
        return None
    if tuple(int(p) for p in re.findall(r"\d+", installed)[:2]) < (1, 6):
        return None
    if any(r.startswith("txredisapi") and "<1.6" in r for r in requires):
        return None
    return (
        f"txredisapi<1.6 (txredisapi {installed} breaks Redis replication in Synapse "
        f"{metadata.version('matrix-synapse')}: pip install 'txredisapi<1.6')"
    )


class PostgresServer:
    """A throwaway PostgreSQL cluster: trust auth, locale C, fsync off, 127.0.0.1:<port>."""

    USER = "synapse"
    DATABASE = "synapse"

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise ServiceError(f"PostgreSQL server binaries not found. {INSTALL_HINT}")
        self.bindir = bindir
        self.port = free_port()
        self.host = "127.0.0.1"
        # Not under pytest's tmp_path: that is private to the user running the tests, and
        # the server may have to run as `postgres`.
        self.dir = Path(tempfile.mkdtemp(prefix="pg-"))
        self.datadir = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.setup_log_path = self.dir / "setup.log"
        self._run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._run_as:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._started = False

    def _run(self, *cmd: str, as_server_user: bool = True) -> None:
        argv = [*(self._run_as if as_server_user else []), *cmd]
        with self.setup_log_path.open("ab") as log:
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            result = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, timeout=60, check=False
            )
        if result.returncode != 0:
            raise ServiceError(f"PostgreSQL: {cmd[0]} exited {result.returncode}\n{self.logs()}")

    def start(self) -> PostgresServer:
        bin_ = self.bindir
        # Locale C and UTF8: what Synapse requires of its database.
        self._run(
            str(bin_ / "initdb"), "-D", str(self.datadir), "-U", self.USER,
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        options = f"-h {self.host} -p {self.port} -k {self.dir} -F -c synchronous_commit=off"
        self._started = True
        self._run(
            str(bin_ / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.log_path),
            "-w", "-t", "30", "-o", options, "start",
        )  # fmt: skip
        self._run(
            str(bin_ / "createdb"), "-h", self.host, "-p", str(self.port), "-U", self.USER,
            self.DATABASE,
            as_server_user=False,
        )  # fmt: skip
        return self

    def synapse_database_config(self) -> dict[str, Any]:
        """The ``database:`` section of homeserver.yaml for this server."""
        return {
            "name": "psycopg2",
            "args": {
                "user": self.USER,
                "database": self.DATABASE,
                "host": self.host,
                "port": self.port,
                "cp_min": 1,
                "cp_max": 5,
            },
        }

    def stop(self) -> None:
        if self._started and (self.datadir / "postmaster.pid").exists():
            # Immediate: nothing in a throwaway cluster is worth a clean shutdown.
            pg_ctl = str(self.bindir / "pg_ctl")
            subprocess.run(
                [*self._run_as, pg_ctl, "-D", str(self.datadir), "-m", "immediate", "-w", "stop"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
                check=False,
            )
        self._started = False

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(_tail(p) for p in (self.setup_log_path, self.log_path))


class RedisServer:
    """A throwaway Redis on 127.0.0.1:<port>, no persistence; with ``tls`` (certificate,
    key and CA files), also TLS on ``tls_port`` (clients not asked for certificates)."""

    def __init__(self, tls: tuple[Path, Path, Path] | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError(f"redis-server not found. {INSTALL_HINT}")
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redis-"))
        self.log_path = self.dir / "redis.log"
        #: Redis also listens on this Unix socket (for ``unix://`` URLs).
        self.socket_path = self.dir / "redis.sock"
        self.tls = tls
        self.tls_port = free_port() if tls is not None else None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> RedisServer:
        argv = [
            self.binary, "--port", str(self.port), "--bind", self.host,
            "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
            "--save", "", "--appendonly", "no", "--dir", str(self.dir),
        ]  # fmt: skip
        if self.tls is not None:
            cert, key, ca = self.tls
            argv += [
                "--tls-port", str(self.tls_port), "--tls-cert-file", str(cert),
                "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceError(f"redis-server exited {self._proc.returncode}\n{self.logs()}")
            if self._ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"redis-server did not answer PING within {timeout:.0f}s\n{self.logs()}")

    def _ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def synapse_redis_config(self) -> dict[str, Any]:
        """The ``redis:`` section of homeserver.yaml for this server."""
        return {"enabled": True, "host": self.host, "port": self.port}

    def stop(self) -> None:
        terminate(self._proc, grace=10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self) -> str:
        return _tail(self.log_path)


REQUIRE_ENV = "SYNAPSE_BASE_CS_URL_REQUIRE_SERVICES"


def skip_or_fail(message: str) -> None:
    """Without a server the tests need: skip locally, fail where CI requires them."""
    import pytest

    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 and {message}", pytrace=False)
    pytest.skip(message)


def redis_server() -> RedisServer:
    """A started throwaway Redis, or a skip (a failure in CI) with the install hint."""
    if shutil.which("redis-server") is None:
        skip_or_fail(f"these tests need redis-server. {INSTALL_HINT}")
    return RedisServer().start()


def required_binary(name: str, package: str) -> str:
    """The path of ``name``, or a skip (a failure in CI) naming its Debian package."""
    found = shutil.which(name)
    if found is None:
        skip_or_fail(f"these tests need {name} (Debian: {package}). {INSTALL_HINT}")
    assert found is not None
    return found
