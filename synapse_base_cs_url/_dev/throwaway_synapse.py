"""Throwaway Synapse processes on loopback, for the demo, the tests and the benchmarks.

Each one gets a temp directory, a free port, SQLite, a generated signing key and fast
password hashing, and is driven over real HTTP with the standard library only (so the demo
needs nothing beyond Synapse itself). Synapse's log is kept in the work directory so that a
failing test or demo can show it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from synapse_base_cs_url.core.json_dict import JsonDict

#: Rate limits high enough that a test suite never trips them by accident.
GENEROUS_RATELIMIT = {"per_second": 10000, "burst_count": 10000}


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a port nobody is listening on (racy, but good enough on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def terminate(proc: subprocess.Popen[bytes] | None, grace: float = 15.0) -> None:
    """Stop a child process: SIGTERM, then SIGKILL if it has not exited after ``grace`` s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class HttpResult:
    """A finished HTTP exchange: status, headers and raw body (JSON-decoded on demand)."""

    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        # Header names are case-insensitive; keep them as the server spelled them.
        self.headers: dict[str, str] = dict(headers.items())
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"HttpResult({self.status}, {self.body[:300]!r})"


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    """Hand 3xx answers back to the caller: tests check redirects, they do not follow them."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_KeepRedirects)


def http_request(
    method: str,
    url: str,
    body: bytes | JsonDict | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> HttpResult:
    """One HTTP request that returns error and redirect statuses instead of raising/following."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if isinstance(body, dict):
        req.add_header("Content-Type", "application/json")
    try:
        with _NO_REDIRECTS.open(req, timeout=timeout) as resp:
            return HttpResult(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        return HttpResult(e.code, e.headers, e.read())


class LoopbackSynapse:
    """What every Synapse process here shares: a port on loopback, a work directory with its
    log files, a command line to run, waiting for ``/versions``, stopping, HTTP helpers.

    ``SynapseProcess`` (a homeserver main process) and the tests' generic worker build on it.
    """

    server_name: str

    def __init__(
        self,
        workdir: Path,
        log_path: Path,
        console_path: Path,
        *,
        python: str = sys.executable,
        extra_pythonpath: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log_path = log_path
        self.console_path = console_path
        self._python = python
        self._extra_pythonpath = list(extra_pythonpath)
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The arguments after ``python``; also writes whatever config they name."""
        raise NotImplementedError

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process (without waiting for it to serve); ``stop()`` ends it."""
        argv = [self._python, *self.command()]
        env = dict(os.environ)
        pythonpath = [*self._extra_pythonpath, env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in pythonpath if p)
        with self.console_path.open("wb") as console:
            self._proc = subprocess.Popen(
                argv, stdout=console, stderr=subprocess.STDOUT, cwd=self.workdir, env=env
            )
        return self._proc

    def _start_and_wait(self, timeout: float) -> None:
        """Start the process and wait until it answers ``/versions``; raise with its log if not."""
        proc = self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SynapseStartupError(self, f"exited with code {proc.returncode}")
            try:
                if self.get("/_matrix/client/versions", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SynapseStartupError(self, f"did not answer /versions within {timeout:.0f}s")

    @property
    def pid(self) -> int:
        """The process id (e.g. to ``SIGSTOP`` it: a homeserver that hangs)."""
        assert self._proc is not None, "not started"
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        terminate(self._proc)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def logs(self, max_chars: int = 20000) -> str:
        """The tail of the process's log and console output, for failure reports."""
        parts = []
        for path in (self.console_path, self.log_path):
            if path.exists():
                text = path.read_text(errors="replace")
                parts.append(f"--- {path} ---\n{text[-max_chars:]}")
        return "\n".join(parts)

    # -- HTTP helpers -------------------------------------------------------------------

    def get(self, path: str, **kwargs: Any) -> HttpResult:
        return http_request("GET", self.base_url + path, **kwargs)

    def post(self, path: str, body: bytes | JsonDict | None = None, **kwargs: Any) -> HttpResult:
        return http_request("POST", self.base_url + path, body, **kwargs)

    def password_login(self, user: str, password: str, **extra: Any) -> HttpResult:
        body: JsonDict = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            **extra,
        }
        return self.post("/_matrix/client/v3/login", body)


class SynapseProcess(LoopbackSynapse):
    """One real Synapse homeserver process.

    ``modules`` is the ``modules:`` list of homeserver.yaml; ``extra_config`` is merged over
    the generated config (top-level keys replace), so tests can set anything Synapse knows.
    """

    def __init__(
        self,
        server_name: str = "localhost",
        *,
        modules: Sequence[JsonDict] = (),
        extra_config: Mapping[str, Any] | None = None,
        workdir: Path | None = None,
        python: str = sys.executable,
        extra_pythonpath: Sequence[str] = (),
    ) -> None:
        self.server_name = server_name
        self._own_workdir = workdir is None
        work = Path(workdir or tempfile.mkdtemp(prefix="throwaway-synapse-"))
        super().__init__(
            work,
            work / "homeserver.log",
            work / "console.log",
            python=python,
            extra_pythonpath=extra_pythonpath,
        )
        self.registration_shared_secret = hashlib.sha256(os.urandom(16)).hexdigest()
        self.config_path = self.workdir / "homeserver.yaml"
        self.config = self._build_config(modules, extra_config or {})

    # -- configuration ----------------------------------------------------------------

    def _build_config(self, modules: Sequence[JsonDict], extra: Mapping[str, Any]) -> JsonDict:
        d = self.workdir
        log_config = {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                    "%(request)s - %(message)s"
                }
            },
            "filters": {"context": {"()": "synapse.logging.context.LoggingContextFilter"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "filters": ["context"],
                    "encoding": "utf8",
                }
            },
            "loggers": {"synapse.storage.SQL": {"level": "WARNING"}},
            "root": {"level": "INFO", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        (d / "log.yaml").write_text(yaml.safe_dump(log_config))
        config: JsonDict = {
            "server_name": self.server_name,
            "pid_file": str(d / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(d / "homeserver.db")}},
            "log_config": str(d / "log.yaml"),
            "media_store_path": str(d / "media_store"),
            "signing_key_path": str(d / "signing.key"),
            "registration_shared_secret": self.registration_shared_secret,
            "macaroon_secret_key": hashlib.sha256(os.urandom(16)).hexdigest(),
            "form_secret": hashlib.sha256(os.urandom(16)).hexdigest(),
            "report_stats": False,
            "bcrypt_rounds": 4,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "enable_metrics": False,
            "rc_login": {
                "address": GENEROUS_RATELIMIT,
                "account": GENEROUS_RATELIMIT,
                "failed_attempts": GENEROUS_RATELIMIT,
            },
            "rc_registration": GENEROUS_RATELIMIT,
            "rc_message": GENEROUS_RATELIMIT,
            "modules": list(modules),
        }
        config.update(extra)
        return config

    def write_config(self) -> Path:
        """Write homeserver.yaml (and a signing key) to the work directory; return its path."""
        from signedjson.key import generate_signing_key, write_signing_keys

        key_path = self.workdir / "signing.key"
        if not key_path.exists():
            with key_path.open("w") as f:
                write_signing_keys(f, [generate_signing_key("a_test")])
        self.config_path.write_text(yaml.safe_dump(self.config))
        return self.config_path

    # -- lifecycle ----------------------------------------------------------------------

    def command(self) -> list[str]:
        return ["-m", "synapse.app.homeserver", "-c", str(self.write_config())]

    def start(self, timeout: float = 60.0) -> SynapseProcess:
        """Start Synapse and wait until it answers ``/versions``; raise with its log if not."""
        self._start_and_wait(timeout)
        return self

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SynapseProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def register_user(self, localpart: str, password: str, *, admin: bool = False) -> str:
        """Create a user through the shared-secret admin API; return the full user id."""
        path = "/_synapse/admin/v1/register"
        nonce = self.get(path).json()["nonce"]
        parts = (nonce, localpart, password, "admin" if admin else "notadmin")
        mac = hmac.new(
            self.registration_shared_secret.encode(),
            "\x00".join(parts).encode(),
            digestmod=hashlib.sha1,
        )
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        result = self.post(path, body)
        if result.status != 200:
            raise RuntimeError(f"registering {localpart} failed: {result!r}")
        user_id: str = result.json()["user_id"]
        return user_id


class SynapseStartupError(RuntimeError):
    """Synapse did not come up; the message carries its log."""

    def __init__(self, synapse: LoopbackSynapse, problem: str) -> None:
        super().__init__(f"Synapse {synapse.server_name} {problem}\n{synapse.logs()}")
        self.synapse = synapse
