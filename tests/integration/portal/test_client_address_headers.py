"""A client cannot name the address its homeserver records through the portal, whichever
header the homeserver's own proxy takes it from.

Here hs2 sits behind a real nginx that takes the client's address from ``X-Real-IP`` when
the connection comes from loopback (``set_real_ip_from`` / ``real_ip_header``, a common
setup) and passes it on to Synapse as ``X-Forwarded-For`` (hs2's listener has
``x_forwarded``); the portal reaches hs2 through that nginx (``proxy_url``). Synapse's login
IP recorder (see ``test_client_ip``) shows what the homeserver believed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import free_port, terminate
from tests.harness.clients import new_device, password_body, session_from
from tests.harness.constants import CLIENT_IP
from tests.harness.nginx import nginx_binary
from tests.harness.portal import Homeservers, portal_config

pytestmark = pytest.mark.integration

CLAIMED = "6.6.6.6"


class RealIpNginx:
    """nginx in front of one homeserver, believing ``X-Real-IP`` from loopback."""

    def __init__(self, upstream_port: int) -> None:
        self.binary = nginx_binary()
        self.dir = Path(tempfile.mkdtemp(prefix="nginx-realip-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.dir / "logs").mkdir()
        temp = ""
        # nginx's workers drop root for its default user: they must be able to write here.
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / name).mkdir()
            (self.dir / name).chmod(0o777)
            temp += f"  {name if name != 'body' else 'client_body'}_temp_path {self.dir}/{name};\n"
        self.dir.chmod(0o755)
        (self.dir / "nginx.conf").write_text(
            "daemon off;\nworker_processes 1;\n"
            f"pid {self.dir}/nginx.pid;\nerror_log {self.dir}/logs/error.log info;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            f"  access_log {self.dir}/logs/access.log;\n{temp}"
            "  server {\n"
            f"    listen 127.0.0.1:{self.port};\n"
            "    set_real_ip_from 127.0.0.0/8;\n"
            "    real_ip_header X-Real-IP;\n"
            "    location / {\n"
            f"      proxy_pass http://127.0.0.1:{upstream_port};\n"
            "      proxy_set_header X-Forwarded-For $remote_addr;\n"
            "    }\n"
            "  }\n"
            "}\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> RealIpNginx:
        argv = [self.binary, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")]
        test = subprocess.run([*argv, "-t"], capture_output=True, text=True, check=False)
        assert test.returncode == 0, test.stderr
        self._proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not listen")

    def stop(self) -> None:
        terminate(self._proc, grace=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def nginx(homeservers: Homeservers) -> Iterator[RealIpNginx]:
    proxy = RealIpNginx(homeservers.hs2.port).start()
    yield proxy
    proxy.stop()


def login(base_url: str, **headers: str) -> str:
    device_id = new_device()
    result = session_from(CLIENT_IP).post(
        f"{base_url}/_matrix/client/v3/login",
        json=password_body("h2_carol", device_id),
        headers=headers,
        timeout=30,
    )
    assert result.status_code == 200, result.text
    return device_id


def recorded_ips(homeservers: Homeservers, device_id: str) -> list[str]:
    return [r["ip"] for r in homeservers.logins_recorded("hs2", device_id)]


def test_the_nginx_believes_x_real_ip_from_loopback(
    nginx: RealIpNginx, homeservers: Homeservers
) -> None:
    """The control: without the portal, a client's own X-Real-IP reaches hs2 as its address
    (so the next test can see the header arrive, if the portal passed it on)."""
    device_id = login(nginx.url, **{"X-Real-IP": CLAIMED})
    assert recorded_ips(homeservers, device_id) == [CLAIMED]


def test_a_client_sent_x_real_ip_does_not_reach_the_homeserver(
    nginx: RealIpNginx, homeservers: Homeservers, start_portal: Any
) -> None:
    """The portal drops the client's X-Real-IP and sets its own: hs2 records the client's
    real address (not the claimed one, nor the portal's)."""
    named = {"hs1": homeservers.hs1, "hs2": homeservers.hs2, "plain": homeservers.plain}
    config = portal_config(named, mode="proxy")
    config["homeservers"]["hs2"]["proxy_url"] = nginx.url
    portal: PortalProcess = start_portal("behind-real-ip-nginx", config)
    device_id = login(portal.url, **{"X-Real-IP": CLAIMED, "True-Client-IP": CLAIMED})
    assert recorded_ips(homeservers, device_id) == [CLIENT_IP]
