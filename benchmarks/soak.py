"""An hour of mixed traffic while homeservers, Redis and portal replicas fail: does anything
get lost, and does anything leak?

    python benchmarks/soak.py [--minutes 60] [--out DIR] [--sample SECONDS]

The deployment: three real Synapses with the module (each answers the portal's directory
and asks the portal before it creates an account), two portal replicas sharing a real Redis,
and a real nginx in front of them (``docs/nginx-gateway.conf``, its ``upstream`` holding
both replicas; the modules reach the portal through an internal nginx door that balances the
same replicas). The directory and the gateway are on; ``mode: auto`` redirects most clients
and proxies those that do not follow a 307 (``Dart/``).

The traffic, steady, every client through nginx: logins by localpart and by e-mail
(redirected, then the client follows to its homeserver) and by full Matrix ID and by
localpart in proxy mode; registrations (new names, placed by a hash pool, then logging in
like everybody else); sessions staying at the portal's address (whoami, a message sent,
``/sync`` held open, media up and down); password-reset requests; clients that vanish in the
middle of a request.

The faults, on a schedule scaled to the run: a homeserver stopped and started, one hung
(``SIGSTOP``) and resumed, Redis restarted, one replica killed (``SIGKILL``) and started,
both replicas reloaded with a changed config (``SIGHUP``).

Every ``--sample`` seconds: each process's RSS and open file descriptors, p50/p99 per kind of
request and errors by kind. At the end, a verdict:

- no login lost: each login succeeded, at once or on retry after a retriable error
  (``503`` with ``Retry-After``, a ``502``/``504``, a timeout) while its own homeserver was
  down, or a registration while any homeserver or the shared state was (a new name must be
  checked against every homeserver and reserved), or a password reset while the shared
  state was (its last step may reach the other replica);
- no ``500``, and no error outside the windows that excuse it;
- every process's file descriptors back to their level after each fault;
- the portal replicas' RSS growth per hour (after warm-up) under 20 MB.

It writes ``soak.json`` (every sample) and ``soak.png`` (the figures over time, faults
shaded; needs matplotlib) to ``--out``, and exits 1 if the verdict fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from portal_loadgen import percentile  # noqa: E402

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess  # noqa: E402
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess, free_port  # noqa: E402
from synapse_base_cs_url.core import rendezvous_pick  # noqa: E402
from tests.harness.constants import MODULE  # noqa: E402
from tests.harness.nginx import NginxProcess  # noqa: E402
from tests.harness.portal import homeserver_entries, placement_secrets  # noqa: E402
from tests.harness.services import RedisServer  # noqa: E402
from tests.harness.smtp import SmtpSink  # noqa: E402

NAMES = ("h1", "h2", "h3")
PASSWORD = "soak password"
LOGIN = "/_matrix/client/v3/login"
REGISTER = "/_matrix/client/v3/register"
RESET = "/_matrix/client/v3/account/password/email/requestToken"
PROXIED_CLIENT = "Dart/3.5 (dart:io)"
LOGIN_KINDS = ("login-localpart", "login-email", "login-mxid-proxy", "login-localpart-proxy")
SESSION_KINDS = ("whoami", "send", "sync", "upload", "download")
KINDS = (*LOGIN_KINDS, "register", "reset", *SESSION_KINDS, "vanish")
#: Seconds after a fault ends during which its errors are still excused (the portal's probe
#: notices a homeserver back within ``upstream.probe_interval``; a client retrying waits).
GRACE = 10.0
#: Longest a login keeps being retried before it counts as lost.
GIVE_UP = 360.0
GENEROUS = {"per_second": 10000, "burst_count": 10000}
MB = 1024 * 1024


# -- what happened ------------------------------------------------------------------------


@dataclass
class Outcome:
    at: float
    kind: str
    home: str
    status: int
    """HTTP status; 0 for no answer (timeout, connection dropped)."""
    seconds: float
    retry_after: bool = False
    ok: bool = False
    why: str = ""


@dataclass
class Fault:
    name: str
    target: str
    """A homeserver's name, ``redis`` or a replica's name."""
    start: float
    end: float = 0.0
    fds_before: dict[str, int] = field(default_factory=dict)
    fds_after: dict[str, int] = field(default_factory=dict)


class Record:
    """Everything the clients saw, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        self.lost: list[str] = []
        self.faults: list[Fault] = []
        self.wrong_home: list[str] = []

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def excused(self, outcome: Outcome) -> bool:
        """Whether a failed request fell in a window that excuses it."""
        for fault in self.faults:
            end = (fault.end or time.monotonic()) + GRACE
            started = outcome.at - outcome.seconds
            if not (started <= end and outcome.at >= fault.start):
                continue
            if fault.name == "replica killed" and started <= fault.start + 2:
                return True  # in flight at the replica when it died
            if fault.target == outcome.home and fault.name != "replica killed":
                return True
            if outcome.kind == "register" and fault.name in ("stopped", "hung", "restarted"):
                return True  # a new name is checked against every homeserver and reserved
            if outcome.kind == "reset" and fault.target == "redis":
                return True  # its client secret is shared: the last step may reach either
        return False


# -- the deployment -----------------------------------------------------------------------


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


# -- the clients --------------------------------------------------------------------------


class Clients:
    def __init__(self, d: Deployment, record: Record, stop: threading.Event) -> None:
        self.d = d
        self.record = record
        self.stop = stop
        self.users = list(d.users)
        self.users_lock = threading.Lock()

    def home_of_server(self, server_name: str) -> str:
        return next(n for n, hs in self.d.homeservers.items() if hs.server_name == server_name)

    def timed(
        self,
        kind: str,
        home: str,
        send: Callable[[], requests.Response],
        ok: Callable[[requests.Response], bool] = lambda r: r.status_code == 200,
    ) -> tuple[Outcome, requests.Response | None]:
        started = time.monotonic()
        try:
            answer: requests.Response | None = send()
        except requests.RequestException as e:
            answer = None
            why = type(e).__name__
        now = time.monotonic()
        outcome = Outcome(
            now, kind, home, 0 if answer is None else answer.status_code, now - started
        )
        if answer is not None:
            outcome.retry_after = "Retry-After" in answer.headers
            outcome.ok = ok(answer)
            why = "" if outcome.ok else answer.text[:200]
        outcome.why = why
        self.record.add(outcome)
        return outcome, answer

    def pick_user(self) -> tuple[str, str]:
        with self.users_lock:
            return random.choice(self.users)

    # logins, retried until they succeed (or count as lost)

    def login_body(self, kind: str, user: str, home: str) -> dict[str, Any]:
        if kind == "login-email":
            identifier = {"type": "m.id.thirdparty", "medium": "email", "address": email_of(user)}
        elif kind == "login-mxid-proxy":
            identifier = {"type": "m.id.user", "user": f"@{user}:{home}.test"}
        else:
            identifier = {"type": "m.id.user", "user": user}
        return {"type": "m.login.password", "identifier": identifier, "password": PASSWORD}

    def login_until_done(
        self, session: requests.Session, kind: str, user: str, home: str
    ) -> str | None:
        """One login, retried as a client would; its access token (logged out after unless
        kept), or None if lost."""
        body = self.login_body(kind, user, home)
        headers = {"User-Agent": PROXIED_CLIENT} if kind.endswith("-proxy") else {}
        give_up = time.monotonic() + GIVE_UP
        while time.monotonic() < give_up:
            outcome, answer = self.timed(
                kind,
                home,
                lambda: session.post(
                    self.d.nginx.url + LOGIN,
                    json=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=30,
                ),
                ok=lambda r: r.status_code in (200, 307),
            )
            if answer is not None and answer.status_code == 307:
                location = answer.headers["Location"]
                try:
                    answer = requests.post(location, json=body, timeout=30)
                except requests.RequestException:
                    answer = None
                if answer is None or answer.status_code != 200:
                    outcome.ok = False
                    outcome.status = 0 if answer is None else answer.status_code
                    outcome.why = f"at the homeserver: {outcome.status}"
            if outcome.ok and answer is not None:
                landed = self.home_of_server(answer.json()["user_id"].partition(":")[2])
                if landed != home:
                    with self.record.lock:
                        self.record.wrong_home.append(f"{kind} {user}: {landed}, not {home}")
                    return None
                token: str = answer.json()["access_token"]
                return token
            wait = 1.0
            if answer is not None and "Retry-After" in answer.headers:
                wait = min(5.0, float(answer.headers["Retry-After"]))
            if self.stop.wait(wait):
                return None
        with self.record.lock:
            self.record.lost.append(f"{kind} {user} ({home})")
        return None

    def logout(self, home: str, token: str) -> None:
        with suppress(requests.RequestException):
            requests.post(
                self.d.homeservers[home].base_url + "/_matrix/client/v3/logout",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )

    def login_worker(self, kinds: tuple[str, ...], pause: float) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            user, home = self.pick_user()
            kind = random.choice(kinds)
            if kind == "login-email" and not user.startswith("soaker"):
                kind = "login-localpart"
            token = self.login_until_done(session, kind, user, home)
            if token is not None:
                self.logout(home, token)
            self.stop.wait(pause)

    # registrations

    def register_worker(self, pause: float) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            name = "new" + secrets.token_hex(4)
            home = rendezvous_pick(list(NAMES), name)
            if self.register_until_done(session, name, home):
                with self.users_lock:
                    self.users.append((name, home))
            self.stop.wait(pause)

    def register_until_done(self, session: requests.Session, name: str, home: str) -> bool:
        give_up = time.monotonic() + GIVE_UP
        body: dict[str, Any] = {"username": name, "password": PASSWORD}
        while time.monotonic() < give_up:
            steps = partial(self.register_steps, session, body)
            outcome, answer = self.timed("register", home, steps)
            if outcome.ok and answer is not None:
                token = answer.json()["access_token"]
                self.logout(home, token)
                return True
            if answer is not None and answer.status_code == 400:
                return False  # refused for good (e.g. a name taken): not a lost login
            if self.stop.wait(1.0):
                return False
        with self.record.lock:
            self.record.lost.append(f"register {name} ({home})")
        return False

    def register_steps(self, session: requests.Session, body: dict[str, Any]) -> requests.Response:
        """A registration with the dummy stage, each step sent to the portal's address."""
        first = self.follow(session, REGISTER, body)
        if first.status_code != 401 or "session" not in first.json():
            return first
        auth = {"type": "m.login.dummy", "session": first.json()["session"]}
        return self.follow(session, REGISTER, {**body, "auth": auth})

    # password resets

    def follow(
        self, session: requests.Session, path: str, body: dict[str, Any]
    ) -> requests.Response:
        """A POST to the portal's address, following its 307 as a client does."""
        answer = session.post(self.d.nginx.url + path, json=body, allow_redirects=False, timeout=30)
        if answer.status_code == 307:
            answer = requests.post(answer.headers["Location"], json=body, timeout=30)
        return answer

    def reset_worker(self, pause: float) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            user, home = self.pick_user()
            if user.startswith("soaker"):
                body = {
                    "email": email_of(user),
                    "client_secret": secrets.token_hex(8),
                    "send_attempt": 1,
                }
                self.timed("reset", home, partial(self.follow, session, RESET, body))
            self.stop.wait(pause)

    # sessions staying at the portal's address

    def session_worker(self, user: str, home: str, pause: float) -> None:
        http = requests.Session()
        token = None
        while token is None and not self.stop.is_set():
            token = self.login_until_done(http, "login-localpart", user, home)
        if token is None:
            return
        auth = {"Authorization": f"Bearer {token}"}
        client = self.d.nginx.url + "/_matrix/client/v3"
        room = None
        since = None
        while not self.stop.is_set():
            if room is None:
                create = partial(
                    http.post, client + "/createRoom", json={}, headers=auth, timeout=30
                )
                _, made = self.timed("send", home, create)
                room = made.json()["room_id"] if made is not None and made.ok else None
            whoami = partial(http.get, client + "/account/whoami", headers=auth, timeout=30)
            self.timed("whoami", home, whoami)
            if room is not None:
                url = f"{client}/rooms/{room}/send/m.room.message/{secrets.token_hex(8)}"
                message = {"msgtype": "m.text", "body": "soak"}
                self.timed(
                    "send", home, partial(http.put, url, json=message, headers=auth, timeout=30)
                )
            query = "timeout=5000" + (
                f"&since={since}" if since else '&filter={"room":{"timeline":{"limit":1}}}'
            )
            sync = partial(http.get, f"{client}/sync?{query}", headers=auth, timeout=40)
            _, synced = self.timed("sync", home, sync)
            if synced is not None and synced.ok:
                since = synced.json()["next_batch"]
            self.media_round_trip(http, home, auth)
            self.stop.wait(pause)

    def media_round_trip(self, http: requests.Session, home: str, auth: dict[str, str]) -> None:
        payload = os.urandom(64 * 1024)
        upload = partial(
            http.post,
            self.d.nginx.url + "/_matrix/media/v3/upload",
            data=payload,
            headers={**auth, "Content-Type": "application/octet-stream"},
            timeout=30,
        )
        _, uploaded = self.timed("upload", home, upload)
        if uploaded is None or not uploaded.ok:
            return
        server, media_id = uploaded.json()["content_uri"].removeprefix("mxc://").split("/")
        url = f"{self.d.nginx.url}{self.d.media_prefix}/download/{server}/{media_id}"
        self.timed(
            "download",
            home,
            partial(http.get, url, headers=auth, timeout=30),
            ok=lambda r: r.status_code == 200 and r.content == payload,
        )

    # clients that vanish

    def vanish_worker(self, pause: float) -> None:
        port = self.d.nginx.port
        while not self.stop.is_set():
            user, home = self.pick_user()
            body = json.dumps(self.login_body("login-localpart", user, home)).encode()
            started = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    head = (
                        f"POST {LOGIN} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    ).encode()
                    if random.random() < 0.5:
                        s.sendall(head + body[: len(body) // 2])  # half a body, then gone
                    else:
                        s.sendall(head + body)  # a whole request, gone before the answer
                    time.sleep(random.uniform(0, 0.05))
                ok = True
            except OSError:
                ok = False
            now = time.monotonic()
            self.record.add(Outcome(now, "vanish", home, 499, now - started, ok=ok))
            self.stop.wait(pause)


# -- faults -------------------------------------------------------------------------------


class Faults:
    def __init__(self, d: Deployment, record: Record, sampler: Sampler) -> None:
        self.d = d
        self.record = record
        self.sampler = sampler

    @contextmanager
    def fault(self, name: str, target: str) -> Iterator[None]:
        fault = Fault(name, target, time.monotonic(), fds_before=self.sampler.fds())
        with self.record.lock:
            self.record.faults.append(fault)
        print(f"[{self.sampler.elapsed():7.1f} s] fault: {target} {name}", flush=True)
        try:
            yield
        finally:
            fault.end = time.monotonic()
            print(f"[{self.sampler.elapsed():7.1f} s] fault over: {target} {name}", flush=True)

    def stopped(self, name: str, seconds: float, stop: threading.Event) -> None:
        hs = self.d.homeservers[name]
        with self.fault("stopped", name):
            hs.stop()
            stop.wait(seconds)
            hs.start()

    def hung(self, name: str, seconds: float, stop: threading.Event) -> None:
        hs = self.d.homeservers[name]
        with self.fault("hung", name):
            os.kill(hs.pid, signal.SIGSTOP)
            try:
                stop.wait(seconds)
            finally:
                os.kill(hs.pid, signal.SIGCONT)

    def redis_restarted(self, seconds: float, stop: threading.Event) -> None:
        with self.fault("restarted", "redis"):
            self.d.redis.stop()
            stop.wait(seconds)
            self.d.redis.start()

    def replica_killed(self, label: str, seconds: float, stop: threading.Event) -> None:
        replica = self.d.replicas[label]
        with self.fault("replica killed", f"portal-{label}"):
            replica.send_signal(signal.SIGKILL)
            replica.wait(10)
            stop.wait(seconds)
            replica.start()

    def reloaded(self) -> None:
        changed = {
            **self.d.config,
            "routes": [
                # A new rule for names nobody has yet; existing users stay where they live.
                {"name": "later", "match": {"localpart": "zz_.*"}, "homeserver": "h2"},
                *self.d.config["routes"],
            ],
        }
        with self.fault("reloaded", "portals"):
            for replica in self.d.replicas.values():
                replica.rewrite_config(changed)
                replica.send_signal(signal.SIGHUP)

    def schedule(self, minutes: float) -> list[tuple[float, Callable[[threading.Event], None]]]:
        """(seconds after the start, fault): spread over the first 80% of the run, the rest
        left calm to see everything settle."""
        total = minutes * 60
        outage = max(15.0, total * 0.06)
        return [
            (total * 0.10, lambda s: self.stopped("h3", outage, s)),
            (total * 0.25, lambda s: self.hung("h2", outage, s)),
            (total * 0.40, lambda s: self.redis_restarted(max(8.0, total * 0.02), s)),
            (total * 0.55, lambda s: self.replica_killed("b", max(8.0, total * 0.02), s)),
            (total * 0.70, lambda s: self.reloaded()),
        ]


# -- sampling -----------------------------------------------------------------------------


class Sampler:
    def __init__(self, d: Deployment, record: Record, every: float) -> None:
        self.d = d
        self.record = record
        self.every = every
        self.started = time.monotonic()
        self.samples: list[dict[str, Any]] = []
        self._seen = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def fds(self) -> dict[str, int]:
        out = {}
        for label, pids in self.d.processes().items():
            got = rss_and_fds(pids)
            if got is not None:
                out[label] = got[1]
        return out

    def sample(self) -> dict[str, Any]:
        processes = {}
        for label, pids in self.d.processes().items():
            got = rss_and_fds(pids)
            if got is not None:
                processes[label] = {"rss_mb": round(got[0], 1), "fds": got[1], "pid": pids[0]}
        with self.record.lock:
            fresh = self.record.outcomes[self._seen :]
            self._seen = len(self.record.outcomes)
        kinds: dict[str, Any] = {}
        by_kind: dict[str, list[Outcome]] = defaultdict(list)
        for o in fresh:
            by_kind[o.kind].append(o)
        for kind, outcomes in by_kind.items():
            seconds = [o.seconds for o in outcomes if o.ok]
            errors: dict[str, int] = defaultdict(int)
            for o in outcomes:
                if not o.ok:
                    errors[str(o.status)] += 1
            kinds[kind] = {
                "count": len(outcomes),
                "p50_ms": round(percentile(seconds, 50) * 1000, 1) if seconds else None,
                "p99_ms": round(percentile(seconds, 99) * 1000, 1) if seconds else None,
                "errors": dict(errors),
            }
        entry = {"t": round(self.elapsed(), 1), "processes": processes, "kinds": kinds}
        self.samples.append(entry)
        return entry

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.every):
            entry = self.sample()
            done = sum(k["count"] for k in entry["kinds"].values())
            errors = sum(sum(k["errors"].values()) for k in entry["kinds"].values())
            portal_rss = [
                f"{label} {p['rss_mb']:.0f} MB/{p['fds']} fds"
                for label, p in entry["processes"].items()
                if label.startswith("portal")
            ]
            print(
                f"[{entry['t']:7.1f} s] {done} requests, {errors} errors; " + ", ".join(portal_rss),
                flush=True,
            )


# -- the verdict --------------------------------------------------------------------------


def verdict(
    record: Record, sampler: Sampler, minutes: float, d: Deployment
) -> tuple[bool, list[str]]:
    lines = []
    passed = True

    def judge(ok: bool, text: str) -> None:
        nonlocal passed
        passed = passed and ok
        lines.append(f"{'PASS' if ok else 'FAIL'}  {text}")

    outcomes = record.outcomes
    logins = [o for o in outcomes if o.kind in LOGIN_KINDS]
    judge(
        not record.lost and not record.wrong_home,
        f"no login lost: {sum(o.ok for o in logins)} logins succeeded, "
        f"{len(record.lost)} never did, {len(record.wrong_home)} at the wrong homeserver"
        + "".join(f"\n      {x}" for x in (record.lost + record.wrong_home)[:10]),
    )
    five_hundreds = [o for o in outcomes if o.status == 500]
    tracebacks = sum(p.logs().count("Traceback") for p in d.replicas.values())
    judge(
        not five_hundreds and not tracebacks,
        f"no 500: {len(five_hundreds)} answers 500, {tracebacks} tracebacks in the portals' logs",
    )
    failed = [o for o in outcomes if not o.ok and o.kind != "vanish"]
    unexcused = [o for o in failed if not record.excused(o)]
    retriable = [o for o in failed if o.status == 503]
    judge(
        not unexcused,
        f"every error in a window that excuses it: {len(failed)} errors, "
        f"{len(unexcused)} outside one"
        + "".join(
            f"\n      {o.kind} ({o.home}) {o.status} @{o.at - sampler.started:.0f}s: {o.why[:80]}"
            for o in unexcused[:10]
        ),
    )
    judge(
        all(o.retry_after for o in retriable),
        f"every 503 carries Retry-After: "
        f"{sum(o.retry_after for o in retriable)} of {len(retriable)}",
    )
    for fault in record.faults:
        grown = {
            label: (fault.fds_before[label], after)
            for label, after in fault.fds_after.items()
            if label in fault.fds_before
            and not label.endswith(fault.target.removeprefix("portal-"))
            and after > fault.fds_before[label] * 1.25 + 10
        }
        judge(
            not grown,
            f"file descriptors back to their level after {fault.target} {fault.name}"
            + (f": grown {grown}" if grown else ""),
        )
    warm = minutes * 60 * 0.2
    for label in [lbl for lbl in sampler.samples[-1]["processes"] if lbl.startswith("portal")]:
        slope = rss_growth_per_hour(sampler.samples, label, warm)
        if slope is None:
            lines.append(f"      {label}: too few samples to fit its RSS growth")
            continue
        text = f"{label} RSS growth after warm-up: {slope:+.1f} MB/hour (limit 20)"
        if minutes >= 30:
            judge(slope < 20, text)
        else:
            lines.append(f"info  {text} (not judged in a run under 30 minutes)")
    for label in [lbl for lbl in sampler.samples[-1]["processes"] if not lbl.startswith("portal")]:
        slope = rss_growth_per_hour(sampler.samples, label, warm)
        if slope is not None:
            lines.append(f"info  {label} RSS growth after warm-up: {slope:+.1f} MB/hour")
    return passed, lines


def rss_growth_per_hour(samples: list[dict[str, Any]], label: str, warm: float) -> float | None:
    """Least-squares slope of RSS over time, over the samples of the process's last pid."""
    last_pid = samples[-1]["processes"].get(label, {}).get("pid")
    points = [
        (s["t"], s["processes"][label]["rss_mb"])
        for s in samples
        if s["t"] >= warm and s["processes"].get(label, {}).get("pid") == last_pid
    ]
    if len(points) < 3:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_r = sum(r for _, r in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    slope = sum((t - mean_t) * (r - mean_r) for t, r in points) / var
    return slope * 3600


def draw(out: Path, sampler: Sampler, record: Record) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib: no picture (pip install matplotlib)", file=sys.stderr)
        return None
    minutes = [s["t"] / 60 for s in sampler.samples]
    fig, axes = plt.subplots(4, 1, figsize=(12, 14), sharex=True)
    latency, errors, memory, fds = axes
    for kind in KINDS:
        p99 = [s["kinds"].get(kind, {}).get("p99_ms") for s in sampler.samples]
        if any(v is not None for v in p99):
            latency.plot(minutes, [v if v is not None else float("nan") for v in p99], label=kind)
    latency.set_yscale("log")
    latency.set_ylabel("p99 (ms)")
    latency.legend(fontsize=7, ncol=4)
    for kind in KINDS:
        counts = [sum(s["kinds"].get(kind, {}).get("errors", {}).values()) for s in sampler.samples]
        if any(counts):
            errors.plot(minutes, counts, label=kind)
    errors.set_ylabel("errors per sample")
    errors.legend(fontsize=7, ncol=4)
    labels = sorted({label for s in sampler.samples for label in s["processes"]})
    for label in labels:
        for axis, key in ((memory, "rss_mb"), (fds, "fds")):
            values = [s["processes"].get(label, {}).get(key, float("nan")) for s in sampler.samples]
            axis.plot(minutes, values, label=label)
    memory.set_ylabel("RSS (MB)")
    fds.set_ylabel("open file descriptors")
    fds.set_xlabel("minutes")
    memory.legend(fontsize=7, ncol=4)
    fds.legend(fontsize=7, ncol=4)
    for fault in record.faults:
        start = (fault.start - sampler.started) / 60
        end = max((fault.end - sampler.started) / 60, start + 0.05)
        for axis in axes:
            axis.axvspan(start, end, color="red", alpha=0.12)
        latency.annotate(
            f"{fault.target} {fault.name}", (start, 1), xycoords=("data", "axes fraction"),
            fontsize=7, rotation=90, va="top",
        )  # fmt: skip
    fig.tight_layout()
    path = out / "soak.png"
    fig.savefig(path, dpi=80)
    return path


def soak(d: Deployment, minutes: float, every: float) -> tuple[Record, Sampler]:
    """The traffic for ``minutes``, the faults on their schedule, sampled every ``every`` s."""
    record = Record()
    stop = threading.Event()
    sampler = Sampler(d, record, every)
    faults = Faults(d, record, sampler)
    clients = Clients(d, record, stop)
    workers: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
        *[(clients.login_worker, (LOGIN_KINDS, 0.2))] * 4,
        (clients.register_worker, (2.0,)),
        (clients.reset_worker, (3.0,)),
        (clients.vanish_worker, (1.0,)),
        *[(clients.session_worker, (*d.users[i], 0.5)) for i in range(len(NAMES) * 2)],
    ]
    threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in workers]
    threads.append(threading.Thread(target=sampler.run, args=(stop,), daemon=True))
    try:
        for thread in threads:
            thread.start()
        settle = max(8.0, every)
        for at, fault in faults.schedule(minutes):
            if stop.wait(max(0.0, at - sampler.elapsed())):
                break
            fault(stop)
            stop.wait(settle)
            record.faults[-1].fds_after = sampler.fds()
        stop.wait(max(0.0, minutes * 60 - sampler.elapsed()))
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    sampler.sample()
    return record, sampler


def save(
    out: Path, minutes: float, record: Record, sampler: Sampler, verdict: dict[str, Any]
) -> None:
    faults = [
        {
            "name": f.name,
            "target": f.target,
            "start": round(f.start - sampler.started, 1),
            "end": round(f.end - sampler.started, 1),
            "fds_before": f.fds_before,
            "fds_after": f.fds_after,
        }
        for f in record.faults
    ]
    failed = [
        {
            "at": round(o.at - sampler.started, 1),
            "kind": o.kind,
            "home": o.home,
            "status": o.status,
            "retry_after": o.retry_after,
            "excused": record.excused(o),
            "why": o.why[:200],
        }
        for o in record.outcomes
        if not o.ok and o.kind != "vanish"
    ]
    figures = {
        "minutes": minutes,
        "samples": sampler.samples,
        "faults": faults,
        "failed": failed[:2000],
        **verdict,
    }
    (out / "soak.json").write_text(json.dumps(figures, indent=1))


def summary(minutes: float, record: Record) -> None:
    totals: dict[str, int] = defaultdict(int)
    for o in record.outcomes:
        totals[o.kind] += 1
    print(f"\n{minutes:g} minutes; requests by kind: {dict(totals)}")
    for kind in KINDS:
        seconds = [o.seconds for o in record.outcomes if o.kind == kind and o.ok]
        if seconds and kind != "vanish":
            print(
                f"  {kind:22} p50 {percentile(seconds, 50) * 1000:8.1f} ms"
                f"  p99 {percentile(seconds, 99) * 1000:8.1f} ms"
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--sample", type=float, default=None, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--users", type=int, default=8, help="accounts per homeserver")
    args = parser.parse_args()
    every = args.sample or (60.0 if args.minutes >= 20 else 10.0)
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-out-"))
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    print(f"setting up in {workdir} ...", flush=True)
    with ExitStack() as cleanup:
        d = build(workdir, args.users, cleanup)
        print("running", flush=True)
        record, sampler = soak(d, args.minutes, every)
        passed, lines = verdict(record, sampler, args.minutes, d)
    save(out, args.minutes, record, sampler, {"verdict": lines, "passed": passed})
    picture = draw(out, sampler, record)
    summary(args.minutes, record)
    print("\n".join(lines))
    where = ", ".join(str(x) for x in (out / "soak.json", picture) if x)
    print(f"VERDICT: {'PASS' if passed else 'FAIL'}  (figures: {where})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
