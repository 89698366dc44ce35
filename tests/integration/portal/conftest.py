"""Real homeservers behind real portal processes, shared by the whole portal test session.

- ``hs1`` (``hs1.test``) and ``hs2`` (``hs2.test``) run the module, each with its own
  ``base_cs_url`` (its real loopback URL, so clients that follow it really get there).
  ``hs2``'s listener has ``x_forwarded: true``; ``hs1``'s has not.
- ``plain`` (``plain.test``) runs Synapse without the module and without ``public_baseurl``:
  its logins carry neither ``base_cs_url`` nor ``well_known``.
- Every homeserver records the IP Synapse assigns to each login (tests.support.login_ip_recorder).
- One portal process per mode (redirect, proxy, auto) routes between them.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attr
import pytest
import requests

from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess
from tests.conftest import STARTED
from tests.integration.conftest import PASSWORD, REPO_ROOT, module_entry
from tests.support.login_ip_recorder import recorded
from tests.support.portal_process import PortalProcess

#: Where tests connect from when the address matters: the portals listen on 127.0.0.1 and
#: connect to the homeservers from 127.0.0.1, so a login recorded from 127.0.0.2 came from
#: the client itself (directly, or through X-Forwarded-For).
CLIENT_IP = "127.0.0.2"
PORTAL_IP = "127.0.0.1"
DART_UA = "Dart/3.5 (dart:io)"

ROUTES = [
    {"name": "hs2-users", "match": {"user_id": "@.*:hs2\\.test"}, "homeserver": "hs2"},
    {"name": "hs2-localparts", "match": {"localpart": "h2_.*"}, "homeserver": "hs2"},
    {"name": "dept2-email", "match": {"address": ".*@dept2\\.example\\.com"}, "homeserver": "hs2"},
    {"name": "plain-users", "match": {"localpart": "p_.*"}, "homeserver": "plain"},
]


@attr.s(auto_attribs=True)
class Homeservers:
    hs1: SynapseProcess
    hs2: SynapseProcess
    plain: SynapseProcess
    recorders: dict[str, Path]

    def by_name(self, name: str) -> SynapseProcess:
        hs: SynapseProcess = getattr(self, name)
        return hs

    def logins_recorded(self, name: str, device_id: str) -> list[dict[str, Any]]:
        return [r for r in recorded(str(self.recorders[name])) if r["device_id"] == device_id]


def _synapse(
    tmp_path_factory: pytest.TempPathFactory,
    server_name: str,
    *,
    module: bool,
    x_forwarded: bool = False,
) -> tuple[SynapseProcess, Path]:
    workdir = tmp_path_factory.mktemp(server_name)
    recorder = workdir / "logins.jsonl"
    hs = SynapseProcess(server_name, workdir=workdir, extra_pythonpath=[str(REPO_ROOT)])
    modules = [
        {
            "module": "tests.support.login_ip_recorder.LoginIpRecorder",
            "config": {"path": str(recorder)},
        }
    ]
    if module:
        modules.append(module_entry(base_cs_url=hs.base_url))
    hs.config["modules"] = modules
    hs.config["listeners"][0]["x_forwarded"] = x_forwarded
    return hs, recorder


def start_all(homeservers: list[SynapseProcess]) -> None:
    """Start Synapses in parallel (each start waits for /versions)."""
    STARTED.extend(homeservers)
    with ThreadPoolExecutor(len(homeservers)) as pool:
        for future in [pool.submit(hs.start) for hs in homeservers]:
            future.result()


@pytest.fixture(scope="session")
def homeservers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeservers]:
    hs1, rec1 = _synapse(tmp_path_factory, "hs1.test", module=True)
    hs2, rec2 = _synapse(tmp_path_factory, "hs2.test", module=True, x_forwarded=True)
    plain, rec3 = _synapse(tmp_path_factory, "plain.test", module=False)
    try:
        start_all([hs1, hs2, plain])
        for user in ("alice", "bob"):
            hs1.register_user(user, PASSWORD)
        for user in ("h2_carol", "dave"):
            hs2.register_user(user, PASSWORD)
        plain.register_user("p_erin", PASSWORD)
        admin = hs2.register_user("admin", PASSWORD, admin=True)
        token = hs2.password_login(admin, PASSWORD).json()["access_token"]
        result = requests.put(
            f"{hs2.base_url}/_synapse/admin/v2/users/@dave:hs2.test",
            json={"threepids": [{"medium": "email", "address": "dave@dept2.example.com"}]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert result.status_code == 200, result.text
        yield Homeservers(hs1, hs2, plain, {"hs1": rec1, "hs2": rec2, "plain": rec3})
    finally:
        for hs in (hs1, hs2, plain):
            hs.stop()


def portal_config(homeservers: dict[str, SynapseProcess], **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "public_baseurl": "https://portal.example.com",
        "mode": "redirect",
        "homeservers": {name: {"base_url": hs.base_url} for name, hs in homeservers.items()},
        "routes": ROUTES,
        "default_homeserver": "hs1",
        "discovery_cache_ttl": 2,
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="session")
def start_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    started: list[PortalProcess] = []

    def start(label: str, config: dict[str, Any]) -> PortalProcess:
        portal = PortalProcess(config, tmp_path_factory.mktemp(f"portal-{label}"))
        started.append(portal)
        return portal.start()

    yield start
    for portal in started:
        portal.stop()


@pytest.fixture(scope="session")
def portals(homeservers: Homeservers, start_portal: Any) -> dict[str, PortalProcess]:
    """One portal per mode, all with hs1, hs2 and plain behind them."""
    named = {"hs1": homeservers.hs1, "hs2": homeservers.hs2, "plain": homeservers.plain}
    return {
        mode: start_portal(mode, portal_config(named, mode=mode))
        for mode in ("redirect", "proxy", "auto")
    }


# --- clients ----------------------------------------------------------------------------------


class SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Make ``requests`` connect from a chosen loopback address, with a timeout unless the
    call gives one (a portal that hangs must fail the test, not hang it)."""

    def __init__(self, source_ip: str) -> None:
        self._source = (source_ip, 0)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = self._source
        super().init_poolmanager(*args, **kwargs)

    default_timeout = 30.0

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().send(request, *args, **kwargs)


def session_from(source_ip: str = CLIENT_IP) -> requests.Session:
    session = requests.Session()
    session.mount("http://", SourceAddressAdapter(source_ip))
    return session


def new_device() -> str:
    return "T" + secrets.token_hex(6).upper()


def password_body(user: str, device_id: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": PASSWORD,
        **extra,
    }
    if device_id:
        body["device_id"] = device_id
    return body


def whoami(base_url: str, token: str) -> requests.Response:
    return requests.get(
        f"{base_url}/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


class HangingServer:
    """Accepts TCP connections and never answers: a homeserver that hangs."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._held:
            conn.close()
        self._sock.close()


class UnacceptingServer:
    """A listening socket whose accept queue is full, so new connections never complete:
    a homeserver that cannot be connected to in time."""

    def __init__(self, fill: int = 4) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(0)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._fillers: list[socket.socket] = []
        for _ in range(fill):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):  # completes in the background
                filler.connect(("127.0.0.1", self.port))
            self._fillers.append(filler)

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._sock.close()
