"""The account directory's cost, each figure measured side by side in one run.

    python benchmarks/directory.py [--blocks 15] [--block 2000] [--logins 1000]
                                   [--cold 100] [--burst 1000] [--distinct 100]
                                   [--entries 100000]

1. **A login whose account the directory has cached vs the same login with no directory**,
   in redirect mode, in process: two real ``PortalProcess`` sites (one with the directory,
   one with the same config and no admin tokens) on in-memory reactors, each fed the same
   ``POST /login`` bytes on a kept connection, answered 307 by the real code (site, request,
   URL table, ``LoginHandler``, ``Directory``, ``DirectoryCache``, ``ExpiringMap``,
   ``LoginRoutes.located``); blocks of logins alternate, the figure is the median of the
   per-block differences (target: < 50 us a login). Then the same through two real portal
   processes in front of three real Synapses, over loopback, logins alternating one by one.
2. **A cold lookup across 3 real Synapses vs one admin-API round trip to one of them**:
   logins by names the directory has not seen (nobody holds them, and accounts held on one
   homeserver), a cached login, and the benchmark's own admin ``GET`` of one account
   (and of one on each homeserver in a row), interleaved. The homeservers are asked at
   once, so the lookup (cold login minus cached login) should cost about one round trip.
3. **1,000 logins of 100 distinct cold names at once** (each a connection of its own):
   the admin API requests each homeserver received, from its log; at most one per name per
   homeserver. Twice: with the directory's default ``concurrency`` and with room for all.
4. **Memory per cached account** in the memory backend: ``--entries`` answers put into
   the ``ExpiringMap`` the process keeps (as ``Lasting`` builds it) by ``DirectoryCache``,
   measured with ``tracemalloc``.

Everything is on loopback; the Synapses use ``bcrypt_rounds: 4`` (no password is checked
here: the portal redirects). The one client address may start ``directory.burst`` lookups:
the benchmark raises it (the limit is per address, and every login here comes from one).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from hook_cost import drive  # noqa: E402
from portal_loadgen import cpu_seconds, median, percentile  # noqa: E402
from side_by_side import added, round_order, timed  # noqa: E402

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess  # noqa: E402
from synapse_base_cs_url._dev.throwaway_synapse import (  # noqa: E402
    SynapseProcess,
    free_port,
    terminate,
)
from synapse_base_cs_url.portal.config.directory import DirectorySettings  # noqa: E402
from synapse_base_cs_url.portal.config.portal_config import PortalConfig  # noqa: E402
from synapse_base_cs_url.portal.directory.directory import DirectoryCache  # noqa: E402
from synapse_base_cs_url.portal.directory.identifier import LOCALPART, Identifier  # noqa: E402
from synapse_base_cs_url.portal.process import PortalProcess as InProcessPortal  # noqa: E402
from synapse_base_cs_url.portal.state.expiring import ExpiringMap  # noqa: E402

NAMES = ("d1", "d2", "d3")
LOGIN_PATH = "/_matrix/client/v3/login"
USER_PATH = "/_synapse/admin/v2/users/"
PASSWORD = "benchmark password"
#: Where the cached account lives (in process: the pool would send it elsewhere).
CACHED = "alice"
MS, US = 1000, 1_000_000


def login_body(user: str) -> bytes:
    return json.dumps(
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": PASSWORD,
        }
    ).encode()


def portal_config(
    homeservers: dict[str, dict[str, str]], tokens: dict[str, Path] | None, **directory: Any
) -> dict[str, Any]:
    """Redirect mode, a 3-member hash pool; with ``tokens``, the directory (its
    ``homeservers`` source) and ``directory`` settings; without, no directory."""
    config: dict[str, Any] = {
        "public_baseurl": "https://portal.example.com",
        "mode": "redirect",
        "homeservers": {name: dict(hs) for name, hs in homeservers.items()},
        "routes": [{"name": "pool", "pool": list(homeservers), "strategy": "hash"}],
        "default_homeserver": NAMES[0],
        "connections": {"max": 4000},
    }
    if tokens is not None:
        for name, path in tokens.items():
            config["homeservers"][name]["admin_token_file"] = str(path)
        # One client address makes every login here: the per-address limit must not bite.
        config["directory"] = {"burst": 1_000_000, "per_second": 1_000_000, **directory}
    return config


# -- 1. a cached login vs no directory, in process -------------------------------------------


class InProcess:
    """One portal on an in-memory reactor, and one kept connection to its site."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.service = InProcessPortal(PortalConfig.from_config(raw), MemoryReactorClock())
        self.channel = self.service.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)

    def login(self, request: bytes) -> bytes:
        self.channel.dataReceived(request)
        answer: bytes = self.transport.value()
        self.transport.clear()
        return answer

    def per_login_us(self, request: bytes, count: int) -> float:
        channel, transport = self.channel, self.transport
        started = time.perf_counter()
        for _ in range(count):
            channel.dataReceived(request)
            transport.clear()
        return (time.perf_counter() - started) / count * US


def cached_in_process(workdir: Path, blocks: int, block: int, fill: int) -> None:
    homeservers = {
        name: {"base_url": f"https://{name}.example.com", "server_name": f"{name}.example.com"}
        for name in NAMES
    }
    tokens = {name: workdir / f"{name}.token" for name in NAMES}
    for path in tokens.values():
        path.write_text("syt_not_used_no_lookup_is_made\n")
    portals = {
        "with the directory": InProcess(portal_config(homeservers, tokens)),
        "without": InProcess(portal_config(homeservers, None)),
    }
    directory = portals["with the directory"].service.portal.directory
    assert directory is not None
    # A directory that has seen many accounts: the cached one among ``fill`` others.
    for i in range(fill):
        drive(directory.remember(Identifier(LOCALPART, f"user{i}"), NAMES[i % 3]))
    drive(directory.remember(Identifier(LOCALPART, CACHED), "d3"))
    body = login_body(CACHED)
    request = (
        b"POST %s HTTP/1.1\r\nHost: portal\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (LOGIN_PATH.encode(), len(body), body)
    )
    for name, portal in portals.items():
        answer = portal.login(request)
        assert answer.startswith(b"HTTP/1.1 307 "), (name, answer[:300])
        if name == "with the directory":
            assert b"Location: https://d3.example.com" in answer, answer[:300]
        portal.per_login_us(request, block)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in portals}
    for i in range(blocks):
        for name in round_order(list(portals), i):
            times[name].append(portals[name].per_login_us(request, block))
    # Still answered from the cache (a lookup would have left the request waiting).
    assert b"Location: https://d3.example.com" in portals["with the directory"].login(request)
    print(
        f"\n1a. in process: {blocks} alternating blocks of {block} logins by a cached account "
        f"({fill + 1} cached), redirect mode:"
    )
    for name, values in times.items():
        print(f"   {name:20s} {median(values):7.2f} us a login (median of blocks)")
    _, pairs = added(times, "with the directory", "without")
    print(f"   the cached directory adds {pairs:+.2f} us a login (median of block pairs; < 50 us)")


# -- the homeservers -------------------------------------------------------------------------

#: A TCP relay that hands on every piece of an answer ``delay`` seconds after it came: a
#: homeserver that far away (its own process, so that it takes no time from the client's).
DELAY_PROXY = """
import asyncio, sys, time

delay = float(sys.argv[1])

async def pipe(reader, writer, lag):
    queue = asyncio.Queue()

    async def later():
        while (item := await queue.get()) is not None:
            due, data = item
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(data)
            await writer.drain()
        writer.close()

    sending = asyncio.ensure_future(later())
    while data := await reader.read(65536):
        queue.put_nowait((time.monotonic() + lag, data))
    queue.put_nowait(None)
    await sending

async def relay(target, client_reader, client_writer):
    server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
    await asyncio.gather(
        pipe(client_reader, server_writer, 0.0),
        pipe(server_reader, client_writer, delay),
        return_exceptions=True,
    )

async def main():
    for pair in sys.argv[2:]:
        port, target = map(int, pair.split(":"))
        await asyncio.start_server(
            lambda r, w, t=target: relay(t, r, w), "127.0.0.1", port
        )
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class DelayProxy:
    """Each homeserver ``delay`` seconds away: ``ports[name]`` relays to it."""

    def __init__(self, targets: dict[str, int], delay: float) -> None:
        self.delay = delay
        self.ports = {name: free_port() for name in targets}
        pairs = [f"{self.ports[name]}:{port}" for name, port in targets.items()]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", DELAY_PROXY, str(delay), *pairs],
            stdout=subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        if self._proc.stdout.readline() != b"ready\n":
            raise RuntimeError("the delaying proxy did not start")

    def stop(self) -> None:
        terminate(self._proc, grace=5)


class Deployment:
    """Three real Synapses, each with an admin whose token the portal uses."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.homeservers = {
            name: SynapseProcess(f"{name}.test", workdir=self._dir(name)) for name in NAMES
        }
        self.tokens: dict[str, Path] = {}
        self.admin_tokens: dict[str, str] = {}

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir()
        return path

    def start(self) -> None:
        with ThreadPoolExecutor(len(NAMES)) as pool:
            list(pool.map(lambda hs: hs.start(), self.homeservers.values()))
        for name, hs in self.homeservers.items():
            admin = hs.register_user("portal-directory", PASSWORD, admin=True)
            token = hs.password_login(admin, PASSWORD).json()["access_token"]
            self.admin_tokens[name] = token
            self.tokens[name] = self.workdir / f"{name}.token"
            self.tokens[name].write_text(token + "\n")

    def register(self, users: dict[str, str]) -> None:
        """``localpart -> homeserver name``; the homeservers register in parallel."""

        def on(name: str) -> None:
            for user, home in users.items():
                if home == name:
                    self.homeservers[name].register_user(user, PASSWORD)

        with ThreadPoolExecutor(len(NAMES)) as pool:
            list(pool.map(on, NAMES))

    def config(
        self, *, directory: bool, far: DelayProxy | None = None, **settings: Any
    ) -> dict[str, Any]:
        """``far``: the portal reaches the homeservers through it."""
        homeservers = {
            name: {"base_url": hs.base_url, "server_name": hs.server_name}
            for name, hs in self.homeservers.items()
        }
        if far is not None:
            for name, port in far.ports.items():
                homeservers[name]["proxy_url"] = f"http://127.0.0.1:{port}"
        return portal_config(homeservers, self.tokens if directory else None, **settings)

    def pids(self) -> list[int]:
        # SynapseProcess has no pid of its own to show (Synapse writes its pid file only
        # when it daemonizes).
        return [hs._proc.pid for hs in self.homeservers.values() if hs._proc is not None]

    def admin_requests(self) -> dict[str, list[str]]:
        """Each homeserver's admin-API user lookups so far (the paths), from its log."""
        pattern = re.compile(r'"GET (' + re.escape(USER_PATH) + r'[^ "]+) HTTP')
        return {name: pattern.findall(hs.log_text()) for name, hs in self.homeservers.items()}

    def stop(self) -> None:
        for hs in self.homeservers.values():
            hs.cleanup()


class Client:
    """One kept-alive connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def login(self, user: str) -> float:
        """A login by ``user``, answered 307."""
        headers = {"Content-Type": "application/json"}
        return timed(
            self.conn, "POST", LOGIN_PATH, body=login_body(user), headers=headers, expect=307
        )

    def admin_get(self, user_id: str, token: str, expect: int) -> float:
        path = USER_PATH + urllib.parse.quote(user_id, safe="")
        headers = {"Authorization": f"Bearer {token}"}
        return timed(self.conn, "GET", path, headers=headers, expect=expect)


def cached_processes(deployment: Deployment, workdir: Path, logins: int) -> None:
    """1b. The same comparison through real portal processes over loopback, with a twin of
    the portal without the directory: what two identical processes differ by is the floor
    under which a difference means nothing."""
    with_it, without, twin = "with the directory", "without", "without (its twin)"
    portals = {
        with_it: PortalProcess(deployment.config(directory=True), workdir / "1b-d"),
        without: PortalProcess(deployment.config(directory=False), workdir / "1b-n"),
        twin: PortalProcess(deployment.config(directory=False), workdir / "1b-t"),
    }
    try:
        for portal in portals.values():
            portal.workdir.mkdir()
            portal.start()
        clients = {name: Client(portal.port) for name, portal in portals.items()}
        for _ in range(100):  # warm-up; the first login by the account looks it up
            for client in clients.values():
                client.login(CACHED)
        times: dict[str, list[float]] = {name: [] for name in portals}
        cpu = {name: cpu_seconds(portal.pid) for name, portal in portals.items()}
        for i in range(logins):
            for name in round_order(list(portals), i):
                times[name].append(clients[name].login(CACHED))
        for name, portal in portals.items():
            cpu[name] = cpu_seconds(portal.pid) - cpu[name]
        print(
            f"\n1b. three portal processes, {logins} logins each by a cached account, "
            "interleaved, keep-alive:"
        )
        for name, values in times.items():
            print(
                f"   {name:20s} p50 {percentile(values, 50) * MS:6.3f} ms   "
                f"p99 {percentile(values, 99) * MS:6.3f} ms   "
                f"CPU {cpu[name] / logins * US:5.0f} us a login"
            )
        for over, what in ((with_it, "the cached directory"), (twin, "the twin")):
            p50, pairs = added(times, over, without)
            extra_cpu = (cpu[over] - cpu[without]) / logins * US
            print(
                f"   {what} adds {p50 * US:+.1f} us at p50 (median of pair differences "
                f"{pairs * US:+.1f} us; CPU {extra_cpu:+.0f} us)"
            )
    finally:
        for portal in portals.values():
            portal.stop()


# -- 2. a cold lookup vs one admin round trip -------------------------------------------------


def cold_lookups(
    deployment: Deployment,
    workdir: Path,
    count: int,
    found: dict[str, str],
    seen: dict[str, str],
    *,
    far: DelayProxy | None = None,
) -> None:
    """``found``: accounts the portal has not looked up (localpart -> homeserver);
    ``seen``: as many others, which only the benchmark's own admin GETs ask for. With
    ``far``, the portal and the benchmark reach the homeservers through it."""
    label = "near" if far is None else "far"
    portal = PortalProcess(deployment.config(directory=True, far=far), workdir / f"2-{label}")
    portal.workdir.mkdir()
    hs = deployment.homeservers
    in_parallel = ThreadPoolExecutor(len(NAMES))
    try:
        portal.start()
        client = Client(portal.port)
        ports = far.ports if far is not None else {name: h.port for name, h in hs.items()}
        direct = {name: Client(port) for name, port in ports.items()}
        synapses = deployment.pids()
        for _ in range(20):  # warm-up: connections, the cached account
            client.login(CACHED)
            for name in NAMES:
                direct[name].admin_get(
                    f"@warm-up:{hs[name].server_name}", deployment.admin_tokens[name], 404
                )
        found_users, seen_users = list(found.items()), list(seen.items())
        times: dict[str, list[float]] = {
            "cached login": [],
            "cold login, nobody holds it": [],
            "cold login, held on one": [],
            "admin GET, one homeserver (404)": [],
            "admin GET, one homeserver (200)": [],
            "admin GET, three at once (404)": [],
            "admin GET, three in a row (404)": [],
        }

        def one_404(i: int) -> float:
            name = NAMES[i % 3]
            user_id = f"@direct-{label}-{i}:{hs[name].server_name}"
            return direct[name].admin_get(user_id, deployment.admin_tokens[name], 404)

        def one_200(i: int) -> float:
            user, name = seen_users[i % len(seen_users)]
            user_id = f"@{user}:{hs[name].server_name}"
            return direct[name].admin_get(user_id, deployment.admin_tokens[name], 200)

        def three_404(i: int, at_once: bool) -> float:
            def ask(name: str) -> float:
                user_id = f"@three-{label}-{i}-{at_once}:{hs[name].server_name}"
                return direct[name].admin_get(user_id, deployment.admin_tokens[name], 404)

            if not at_once:
                return sum(ask(name) for name in NAMES)
            started = time.perf_counter()
            list(in_parallel.map(ask, NAMES))
            return time.perf_counter() - started

        steps = {
            "cached login": lambda i: client.login(CACHED),
            "cold login, nobody holds it": lambda i: client.login(f"nobody-{label}-{i}"),
            "cold login, held on one": lambda i: client.login(found_users[i][0]),
            "admin GET, one homeserver (404)": one_404,
            "admin GET, one homeserver (200)": one_200,
            "admin GET, three at once (404)": lambda i: three_404(i, True),
            "admin GET, three in a row (404)": lambda i: three_404(i, False),
        }
        # CPU-seconds each kind of step cost the portal and the three Synapses (summed over
        # the steps: /proc counts in ticks, unbiased over many steps).
        cpu = {name: [0.0, 0.0] for name in steps}
        rounds = min(count, len(found_users))
        for i in range(rounds):
            for name in round_order(list(steps), i):
                portal_cpu = cpu_seconds(portal.pid)
                synapse_cpu = sum(cpu_seconds(pid) for pid in synapses)
                times[name].append(steps[name](i))
                cpu[name][0] += cpu_seconds(portal.pid) - portal_cpu
                cpu[name][1] += sum(cpu_seconds(pid) for pid in synapses) - synapse_cpu
        where = (
            "on loopback"
            if far is None
            else f"each homeserver {far.delay * MS:g} ms away (a delaying relay)"
        )
        print(
            f"\n2. {where}: {rounds} of each, interleaved (each round its own order), "
            "keep-alive; CPU per step of the portal / the Synapses:"
        )
        for name, values in times.items():
            print(
                f"   {name:32s} p50 {percentile(values, 50) * MS:6.3f} ms   "
                f"p99 {percentile(values, 99) * MS:6.3f} ms   CPU "
                f"{cpu[name][0] / rounds * MS:5.2f} / {cpu[name][1] / rounds * MS:5.2f} ms"
            )
        for cold, one in (
            ("cold login, nobody holds it", "admin GET, one homeserver (404)"),
            ("cold login, held on one", "admin GET, one homeserver (200)"),
        ):
            _, lookup = added(times, cold, "cached login")
            print(
                f"   the lookup ({cold.removeprefix('cold login, ')}): {lookup * MS:.3f} ms "
                f"(cold - cached, median of pairs) = "
                f"{lookup / median(times[one]):.2f} x one round trip ({one})"
            )
        at_once, in_a_row = (
            median(times[f"admin GET, three {how} (404)"]) for how in ("at once", "in a row")
        )
        one_trip = median(times["admin GET, one homeserver (404)"])
        print(
            f"   the benchmark's own three admin GETs (404): at once {at_once / one_trip:.2f} x "
            f"one round trip, in a row {in_a_row / one_trip:.2f} x"
        )
        lookups = re.findall(r"directory \S+: homeservers (\S+)", portal.logs())
        print(f"   the portal's lookups: {dict(Counter(lookups))}")
    finally:
        in_parallel.shutdown()
        portal.stop()


# -- 3. many logins of few names at once ------------------------------------------------------


async def _one_login(port: int, user: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = login_body(user)
    writer.write(
        (
            f"POST {LOGIN_PATH} HTTP/1.1\r\nHost: portal\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    return int(head.split(b" ", 2)[1])


async def _at_once(port: int, users: list[str]) -> list[int]:
    return list(await asyncio.gather(*(_one_login(port, user) for user in users)))


def burst(
    deployment: Deployment, workdir: Path, label: str, users: list[str], **settings: Any
) -> None:
    portal = PortalProcess(deployment.config(directory=True, **settings), workdir / f"3-{label}")
    portal.workdir.mkdir()
    try:
        portal.start()
        before = deployment.admin_requests()
        started = time.perf_counter()
        statuses = asyncio.run(_at_once(portal.port, users))
        seconds = time.perf_counter() - started
        time.sleep(1)  # the last log lines written
        after = deployment.admin_requests()
        distinct = len(set(users))
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(Counter(statuses).items()))
        print(
            f"   {label}: {len(users)} logins of {distinct} names in {seconds:.2f} s; "
            f"answers {shown}"
        )
        for name in NAMES:
            asked = Counter(after[name][len(before[name]) :])
            most = max(asked.values(), default=0)
            print(
                f"     {name}: {sum(asked.values())} admin requests for {len(asked)} names, "
                f"at most {most} per name"
            )
    finally:
        portal.stop()


# -- 4. memory per cached account -------------------------------------------------------------


def memory_per_entry(entries: int) -> None:
    settings = DirectorySettings()
    clock = MemoryReactorClock()
    names = [f"hs{i}" for i in range(1, 4)]
    holders = [frozenset({name}) for name in names]  # the sources' names, shared
    identifiers = [Identifier(LOCALPART, f"user{i:07d}") for i in range(entries)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    memory: ExpiringMap[str, str] = ExpiringMap(
        clock, max_entries=settings.max_cached, ttl=settings.found_ttl, sliding=False
    )
    cache = DirectoryCache(settings, memory, None, known=frozenset(names))
    for i, identifier in enumerate(identifiers):
        drive(cache.put(identifier, holders[i % 3]))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(memory) == entries
    per = (after - before) / entries
    at_cap = per * settings.max_cached / 1e6
    print(
        f"\n4. {entries} found accounts in the memory backend's ExpiringMap, put by "
        f"DirectoryCache: {(after - before) / 1e6:.1f} MB, {per:.0f} bytes an account "
        f"(tracemalloc); at the default max_cached ({settings.max_cached:,}): {at_cap:.0f} MB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=15, help="1a: alternating blocks")
    parser.add_argument("--block", type=int, default=2000, help="1a: logins a block")
    parser.add_argument("--fill", type=int, default=10_000, help="1a: other accounts cached")
    parser.add_argument("--logins", type=int, default=3000, help="1b: logins each way")
    parser.add_argument("--cold", type=int, default=100, help="2: cold logins of each kind")
    parser.add_argument("--burst", type=int, default=1000, help="3: logins at once")
    parser.add_argument("--distinct", type=int, default=100, help="3: names among them")
    parser.add_argument("--entries", type=int, default=100_000, help="4: accounts cached")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-directory-"))
    deployment = Deployment(workdir)
    try:
        memory_per_entry(args.entries)
        cached_in_process(workdir, args.blocks, args.block, args.fill)
        deployment.start()
        # Accounts held on one homeserver each, spread over the three: for 2 (those the
        # portal looks up, and those only the benchmark asks for) and for 3 (half the names;
        # nobody holds the other half).
        found = {f"found-{i}": NAMES[i % 3] for i in range(args.cold)}
        seen = {f"seen-{i}": NAMES[i % 3] for i in range(args.cold)}
        held = {f"burst-{i}": NAMES[i % 3] for i in range(args.distinct // 2)}
        deployment.register({CACHED: "d3", **found, **seen, **held})
        cached_processes(deployment, workdir, args.logins)
        cold_lookups(deployment, workdir, args.cold, found, seen)
        far = DelayProxy({name: hs.port for name, hs in deployment.homeservers.items()}, 0.02)
        try:
            # The same accounts, looked up by a portal that has not seen them either.
            cold_lookups(deployment, workdir, args.cold, found, seen, far=far)
        finally:
            far.stop()
        names = [*held, *(f"burst-free-{i}" for i in range(args.distinct - len(held)))]
        users = [names[i % len(names)] for i in range(args.burst)]
        print(f"\n3. {args.burst} logins at once, each on a connection of its own:")
        burst(deployment, workdir, "concurrency 16 (the default)", users)
        burst(deployment, workdir, "concurrency 100", users, concurrency=100)
    finally:
        deployment.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
