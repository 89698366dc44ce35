"""What asking the portal costs a registration, each figure measured side by side in one run.

    python benchmarks/placement.py [--registrations 60] [--asks 2000] [--names 100]
                                   [--race 1000] [--bcrypt-rounds 4] [--compare-with DIR]

Three real Synapses with the module (``bcrypt_rounds: 4`` unless told; Synapse's default is
12): ``on`` and ``other`` ask a real portal before an account is created (``placement``),
``off`` has the same config without ``placement``. The portal's directory asks the modules
(no admin token).

1. **A registration with enforcement vs without**: fresh names registered directly (the
   two user-interactive steps, on kept connections) alternately at ``on`` and at ``off``;
   what the ask adds is the median of the per-pair differences of the whole registration
   (target: < 5 ms on loopback). A registration asks once for a name nobody holds (the
   directory asks the other homeserver's module, then one set-if-absent).
2. **What an ask for a known answer costs the portal**: ``--asks`` asks by ``on`` for a name
   it holds (the directory's answer cached by a login), against as many of the same ask
   refused at the secret (a ``401``: the HTTP of a ``POST`` with a body, no deciding) and
   as many ``GET /health``, on one kept connection, each request written whole as the
   modules write it, interleaved in blocks: the portal's CPU per request of each, from
   ``/proc`` (target: an ask's own cost < 100 us of the portal's CPU).
3. **A race**: ``--race`` asks for ``--names`` new names, from ``on`` and ``other`` at once
   (50 threads): how many names were told yes to both homeservers (target: none), and how
   many reservations were made (target: ``--names``).
4. With ``--compare-with DIR``: an ask for a new name straight at this portal and at that
   checkout's, with the same config, interleaved (the p50 of each, and what this one adds).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import secrets
import socket
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import side_by_side  # noqa: E402
from portal_loadgen import cpu_seconds, median, percentile  # noqa: E402

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess  # noqa: E402
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess  # noqa: E402
from synapse_base_cs_url.core.placement_protocol import ASK_PATH  # noqa: E402

REGISTER = "/_matrix/client/v3/register"
LOGIN = "/_matrix/client/v3/login"
PASSWORD = "benchmark password"
MODULE = "synapse_base_cs_url.BaseCsUrlModule"
MS, US = 1000, 1_000_000


def connection(url: str) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)


def post(conn: http.client.HTTPConnection, path: str, body: Any, **headers: str) -> Any:
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **headers})
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def register(conn: http.client.HTTPConnection, name: str) -> float:
    """Seconds for a whole registration (both steps); a ``RuntimeError`` unless it worked."""
    started = time.perf_counter()
    body: dict[str, Any] = {"username": name, "password": PASSWORD}
    status, first = post(conn, REGISTER, body)
    if status != 401:
        raise RuntimeError(f"register {name}: {status} {first}")
    auth = {"type": "m.login.dummy", "session": first["session"]}
    status, done = post(conn, REGISTER, {**body, "auth": auth})
    if status != 200:
        raise RuntimeError(f"register {name}: {status} {done}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registrations", type=int, default=60)
    parser.add_argument("--asks", type=int, default=2000)
    parser.add_argument("--names", type=int, default=100)
    parser.add_argument("--race", type=int, default=1000)
    parser.add_argument("--bcrypt-rounds", type=int, default=4, help="Synapse's: 12")
    side_by_side.add_compare_with(parser)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-placement-"))
    secret = {name: secrets.token_hex(24) for name in ("on", "other")}
    for name, value in secret.items():
        (workdir / f"{name}.secret").write_text(value)
    portal = PortalProcess({}, workdir)  # its port first: the modules need its URL

    def synapse(name: str, placement: bool) -> SynapseProcess:
        config: dict[str, Any] = {}
        if placement:
            config["placement"] = {
                "portal_url": portal.url,
                "secret_file": str(workdir / f"{name}.secret"),
            }
        (workdir / name).mkdir()
        return SynapseProcess(
            f"{name}.test",
            workdir=workdir / name,
            modules=[{"module": MODULE, "config": config}],
            extra_config={
                "enable_registration": True,
                "enable_registration_without_verification": True,
                "rc_registration": {"per_second": 1000, "burst_count": 1000},
                "bcrypt_rounds": args.bcrypt_rounds,
            },
        )

    homeservers = {"on": synapse("on", True), "other": synapse("other", True)}
    off = synapse("off", False)
    config = {
        "public_baseurl": "https://portal.example.com",
        "homeservers": {
            name: {
                "base_url": hs.base_url,
                "server_name": hs.server_name,
                "placement_secret_file": str(workdir / f"{name}.secret"),
            }
            for name, hs in homeservers.items()
        },
        "default_homeserver": "on",
    }
    portal.rewrite_config(config)
    compared: dict[str, PortalProcess] = {}
    if args.compare_with:
        compared = side_by_side.portal_versions(config, workdir / "compared", args.compare_with)
    portals = [portal, *compared.values()]
    try:
        for each in portals:
            each.start()
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda hs: hs.start(), [*homeservers.values(), off]))
        registrations(homeservers["on"], off, args.registrations, args.bcrypt_rounds)
        ask_cost(portal, homeservers["on"], secret["on"], args.asks)
        race(portal, secret, args.names, args.race)
        if compared:
            new_names(compared, secret["on"], args.registrations)
    finally:
        for hs in [*homeservers.values(), off]:
            hs.stop()
        for each in portals:
            each.stop()
    return 0


def registrations(on: SynapseProcess, off: SynapseProcess, count: int, rounds: int) -> None:
    conns = {"on": connection(on.base_url), "off": connection(off.base_url)}
    for i in range(5):  # warm both
        for name, conn in conns.items():
            register(conn, f"warm{i}{name}")
    times: dict[str, list[float]] = {"on": [], "off": []}
    for i in range(count):
        for name in random.Random(i).sample(["on", "off"], 2):
            times[name].append(register(conns[name], f"user{i}x{name}"))
    pairs = median([a - b for a, b in zip(times["on"], times["off"], strict=True)])
    print(f"1. a registration, {count} pairs (bcrypt_rounds: {rounds}):")
    for name in ("on", "off"):
        p50, p99 = percentile(times[name], 50), percentile(times[name], 99)
        print(f"   {name:3} p50 {p50 * MS:7.2f} ms  p99 {p99 * MS:7.2f} ms")
    share = pairs / percentile(times["off"], 50)
    print(
        f"   the ask adds, median of pairs: {pairs * MS:+.2f} ms ({share:+.1%} of a "
        f"registration)   (target < 5 ms)"
    )


class WholeRequests:
    """One kept-alive connection that writes each request whole, in one segment, as a
    homeserver's module (Twisted's HTTP client) sends its ask. ``http.client`` sends a
    ``POST``'s body in a second segment: the portal would read each ask twice, a cost the
    modules' asks never have (one read each, checked with ``strace``)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self._host = f"{parts.hostname}:{parts.port}"
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def exchange(self, method: str, path: str, body: bytes = b"", **headers: str) -> int:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self._sock.sendall(head.encode() + b"\r\n" + body)
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._receive()
        answer, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        length = 0
        for line in answer.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self._buffer) < length:
            self._buffer += self._receive()
        self._buffer = self._buffer[length:]
        return int(answer.split(b" ", 2)[1])

    def _receive(self) -> bytes:
        data = self._sock.recv(65536)
        if not data:
            raise RuntimeError("the portal closed the connection")
        return data


def ask_cost(portal: PortalProcess, on: SynapseProcess, secret: str, count: int) -> None:
    register(connection(on.base_url), "held")
    conn = WholeRequests(portal.url)
    body = json.dumps({"localpart": "held"}).encode()
    kinds = {
        "ask": lambda: conn.exchange("POST", ASK_PATH, body, Authorization=f"Bearer {secret}"),
        # The same request refused at the secret: what a POST with a body costs the
        # portal before any deciding (one secret compared, a 401 written).
        "refused": lambda: conn.exchange(
            "POST", ASK_PATH, body, Authorization=f"Bearer {'x' * len(secret)}"
        ),
        "health": lambda: conn.exchange("GET", "/health"),
    }
    expected = {"ask": 200, "refused": 401, "health": 200}
    # A login by the name caches where it lives (an ask leaves its asker out of the lookup,
    # so its answer is never cached): from then on each ask is answered from the cache.
    login = {"type": "m.login.password", "user": "held", "password": PASSWORD}
    assert conn.exchange("POST", LOGIN, json.dumps(login).encode()) == 307
    cpu = dict.fromkeys(kinds, 0.0)
    block = 200
    rounds = max(1, count // block)
    for i in range(rounds):
        for kind in random.Random(i).sample(list(kinds), len(kinds)):
            before = cpu_seconds(portal.pid)
            for _ in range(block):
                status = kinds[kind]()
                assert status == expected[kind], (kind, status)
            cpu[kind] += cpu_seconds(portal.pid) - before
    n = rounds * block
    ask, refused, health = (cpu[kind] / n for kind in ("ask", "refused", "health"))
    print(f"2. the portal's CPU per request, {n} of each (10 ms ticks, summed per block):")
    print(
        f"   an ask with the answer cached {ask * US:6.0f} us   the same refused at the "
        f"secret {refused * US:6.0f} us   GET /health {health * US:6.0f} us"
    )
    print(
        f"   the ask's own cost: {(ask - refused) * US:+.0f} us over the refused POST "
        f"(target < 100 us), {(ask - health) * US:+.0f} us over GET /health"
    )


def race(portal: PortalProcess, secret: dict[str, str], names: int, asks: int) -> None:
    todo = [(f"race{i % names}", ("on", "other")[(i // names) % 2]) for i in range(asks)]
    random.Random(0).shuffle(todo)
    told: dict[str, set[str]] = {}

    def ask(item: tuple[str, str]) -> None:
        name, hs = item
        conn = connection(portal.url)
        status, answer = post(
            conn, ASK_PATH, {"localpart": name}, Authorization=f"Bearer {secret[hs]}"
        )
        conn.close()
        if status == 200 and answer.get("allowed"):
            told.setdefault(name, set()).add(hs)

    started = time.perf_counter()
    with ThreadPoolExecutor(50) as pool:
        list(pool.map(ask, todo))
    seconds = time.perf_counter() - started
    doubled = sum(1 for homes in told.values() if len(homes) > 1)
    print(f"3. {asks} asks for {names} new names from two homeservers at once ({seconds:.1f} s):")
    print(
        f"   names reserved: {len(told)} (target {names}); told yes to both: {doubled} (target 0)"
    )


def new_names(portals: dict[str, PortalProcess], secret: str, count: int) -> None:
    """``--compare-with``: an ask by ``on`` for a new name, straight at this portal and at
    the other checkout's (the same config, the same homeservers), interleaved."""
    conns = {name: WholeRequests(portal.url) for name, portal in portals.items()}
    times: dict[str, list[float]] = {name: [] for name in portals}
    auth = f"Bearer {secret}"
    for i in range(count + 5):
        for name in side_by_side.round_order(list(portals), i):
            body = json.dumps({"localpart": f"side{i}x{name}"}).encode()
            started = time.perf_counter()
            assert conns[name].exchange("POST", ASK_PATH, body, Authorization=auth) == 200
            if i >= 5:  # the first rounds warm the connections
                times[name].append(time.perf_counter() - started)
    print(f"4. an ask for a new name, straight at each portal, {count} rounds:")
    for name in portals:
        print(f"   {side_by_side.LABELS[name]:22} p50 {percentile(times[name], 50) * MS:6.2f} ms")
    p50, pairs = side_by_side.added(times, side_by_side.THIS, side_by_side.OTHER)
    print(f"   this portal adds: {p50 * MS:+.2f} ms (p50s), {pairs * MS:+.2f} ms (pairs)")


if __name__ == "__main__":
    sys.exit(main())
