"""The soak's deployment: three Synapses with the module, two portal replicas on Redis behind
nginx (and an internal nginx door for the modules' asks), an SMTP sink; and the processes
it samples."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from soak_record import GENEROUS, NAMES, PASSWORD

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess, free_port
from tests.harness.constants import MODULE
from tests.harness.nginx import NginxProcess
from tests.harness.portal import homeserver_entries, placement_secrets
from tests.harness.services import RedisServer
from tests.harness.smtp import SmtpSink


@dataclass
class Deployment:
    workdir: Path
    homeservers: dict[str, SynapseProcess]
    redis: RedisServer
    smtp: SmtpSink
    replicas: dict[str, PortalProcess]
    nginx: NginxProcess
    config: dict[str, Any]
    users: list[tuple[str, str]]
    """(localpart, homeserver name) of every account a login may use."""
    media_prefix: str

    def processes(self) -> dict[str, list[int]]:
        """Each process (or group: nginx's master and workers) by label, its pids now."""
        found: dict[str, list[int]] = {
            **{f"portal-{n}": [p.pid] for n, p in self.replicas.items()},
            **{n: [hs.pid] for n, hs in self.homeservers.items() if hs.running},
            "nginx": [self.nginx.pid, *children(self.nginx.pid)],
        }
        redis_proc = self.redis._proc
        if redis_proc is not None and redis_proc.poll() is None:
            found["redis"] = [redis_proc.pid]
        return found


def children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def rss_and_fds(pids: list[int]) -> tuple[float, int] | None:
    """Resident memory (MB) and open file descriptors of a group of processes."""
    total_rss, total_fds = 0.0, 0
    try:
        for pid in pids:
            status = Path(f"/proc/{pid}/status").read_text()
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            total_rss += int(match.group(1)) / 1024 if match else 0
            total_fds += len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    return total_rss, total_fds


def email_of(user: str) -> str:
    return f"{user}@soak.example.com"


def build(workdir: Path, users_per_homeserver: int, cleanup: ExitStack) -> Deployment:
    """Everything started, each stop registered on ``cleanup`` as soon as it is."""
    redis = RedisServer().start()
    cleanup.callback(redis.cleanup)
    smtp = SmtpSink()
    cleanup.callback(smtp.close)
    secret_files = placement_secrets(workdir, NAMES)
    # The modules reach the portal at an internal door of nginx's, on a port chosen here.
    door_port = free_port()
    homeservers = {}
    for name in NAMES:
        (workdir / name).mkdir()
        placement = {
            "portal_url": f"http://127.0.0.1:{door_port}",
            "secret_file": str(secret_files[name]),
        }
        homeservers[name] = SynapseProcess(
            f"{name}.test",
            workdir=workdir / name,
            modules=[{"module": MODULE, "config": {"placement": placement}}],
            extra_config={
                "enable_registration": True,
                "enable_registration_without_verification": True,
                "email": {**smtp.synapse_config(f"noreply@{name}.test")},
                "rc_3pid_validation": GENEROUS,
                "rc_media_create": GENEROUS,
                "max_upload_size": "10M",
            },
        )
    for hs in homeservers.values():
        cleanup.callback(hs.stop)
    with ThreadPoolExecutor(len(NAMES)) as pool:
        list(pool.map(lambda hs: hs.start(), homeservers.values()))
    config: dict[str, Any] = {
        "public_baseurl": "https://portal.example.com",
        "mode": "auto",
        "client_api": "proxy",
        "homeservers": homeserver_entries(homeservers, placement_secret_file=secret_files),
        "routes": [{"name": "pool", "pool": list(NAMES), "strategy": "hash"}],
        "default_homeserver": "h1",
        "directory": {"burst": 100_000, "per_second": 1000, "timeout": 2},
        "state": {"backend": "redis", "url": f"redis://127.0.0.1:{redis.port}/0"},
        "timeouts": {"connect": 2, "total": 10},
        "upstream": {"probe_interval": 1},
        # Every client of the soak comes from 127.0.0.1.
        "clients": {"records_per_second": 1000, "records_burst": 1000},
    }
    replicas = {}
    for label in ("a", "b"):
        (workdir / f"portal-{label}").mkdir()
        replicas[label] = PortalProcess(config, workdir / f"portal-{label}")
        cleanup.callback(replicas[label].stop)
        replicas[label].start()
    door = (
        f"server {{\n  listen 127.0.0.1:{door_port};\n"
        "  location /_synapse_base_cs_url/v1/placement/ {\n"
        "    proxy_pass http://portal;\n    proxy_http_version 1.1;\n"
        '    proxy_set_header Connection "";\n  }\n}\n'
    )
    nginx = NginxProcess([p.port for p in replicas.values()], extra=door)
    cleanup.callback(nginx.stop)
    nginx.start()
    # The accounts, once the portal is there to be asked before each is made.
    users = []
    for i in range(users_per_homeserver * len(NAMES)):
        name = NAMES[i % len(NAMES)]  # not where the pool would place them: the directory
        hs = homeservers[name]  # must find them
        user = f"soaker{i}"
        user_id = hs.register_user(user, PASSWORD)
        bind_email(hs, user_id, email_of(user))
        users.append((user, name))
    versions = requests.get(nginx.url + "/_matrix/client/versions", timeout=30).json()
    media = "/_matrix/client/v1/media" if "v1.11" in versions["versions"] else "/_matrix/media/v3"
    return Deployment(workdir, homeservers, redis, smtp, replicas, nginx, config, users, media)


def bind_email(hs: SynapseProcess, user_id: str, address: str) -> None:
    admin = getattr(hs, "_soak_admin", None)
    if admin is None:
        admin_id = hs.register_user(f"soak-admin-{hs.server_name[:2]}", PASSWORD, admin=True)
        admin = hs.password_login(admin_id, PASSWORD).json()["access_token"]
        hs._soak_admin = admin  # type: ignore[attr-defined]
    bound = requests.put(
        f"{hs.base_url}/_synapse/admin/v2/users/{user_id}",
        json={"threepids": [{"medium": "email", "address": address}]},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    bound.raise_for_status()
