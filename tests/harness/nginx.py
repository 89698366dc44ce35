"""A throwaway nginx on a free loopback port, configured from the deployment guide's own
config file (``docs/nginx-gateway.conf``) with its placeholders filled in: the portal (one
replica, or several that nginx balances), and optionally more of the ``http { }`` block."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from synapse_base_cs_url._dev.throwaway_synapse import free_port, terminate
from tests.harness.constants import REPO_ROOT
from tests.harness.services import INSTALL_HINT, skip_or_fail

GUIDE_CONFIG = REPO_ROOT / "docs" / "nginx-gateway.conf"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        skip_or_fail(f"these tests need nginx (Debian: nginx-light). {INSTALL_HINT}")
    assert found is not None
    return found


class NginxProcess:
    def __init__(self, portal_port: int | Sequence[int], extra: str = "") -> None:
        self.binary = nginx_binary()
        self.dir = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.dir / "logs").mkdir()
        # nginx's workers drop root for its default user: they must be able to write here.
        for name in ("cache", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / name).mkdir()
            (self.dir / name).chmod(0o777)
        self.dir.chmod(0o755)
        site = GUIDE_CONFIG.read_text()
        site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{self.port};")
        ports = [portal_port] if isinstance(portal_port, int) else list(portal_port)
        replicas = "".join(f"    server 127.0.0.1:{port};\n" for port in ports)
        site = site.replace("    server 127.0.0.1:8080;\n", replicas)
        site = site.replace("/var/cache/nginx/portal-route", str(self.dir / "cache"))
        for line in site.splitlines():  # the guide's TLS lines, for the real deployment
            if line.strip().startswith(("ssl_certificate", "server_name")):
                site = site.replace(line + "\n", "")
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(
            "daemon off;\nworker_processes 1;\n"
            f"pid {self.dir}/nginx.pid;\nerror_log {self.dir}/logs/error.log info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"  access_log {self.dir}/logs/access.log;\n"
            f"  client_body_temp_path {self.dir}/body;\n  proxy_temp_path {self.dir}/proxy;\n"
            f"  fastcgi_temp_path {self.dir}/fastcgi;\n  uwsgi_temp_path {self.dir}/uwsgi;\n"
            f"  scgi_temp_path {self.dir}/scgi;\n" + site + "\n" + extra + "\n}\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> NginxProcess:
        test = subprocess.run(
            [self.binary, "-t", "-p", str(self.dir), "-c", str(self.conf)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert test.returncode == 0, test.stderr
        self._proc = subprocess.Popen(
            [self.binary, "-p", str(self.dir), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen:\n{self.logs()}")

    @property
    def pid(self) -> int:
        """The master process (its workers are its children)."""
        assert self._proc is not None
        return self._proc.pid

    def logs(self) -> str:
        path = self.dir / "logs" / "error.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def access_log(self) -> str:
        path = self.dir / "logs" / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        terminate(self._proc, grace=10)
        shutil.rmtree(self.dir, ignore_errors=True)
