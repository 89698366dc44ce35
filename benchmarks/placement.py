"""What asking the portal costs a registration, each figure measured side by side in one run.

    python benchmarks/placement.py [--registrations 60] [--asks 2000] [--names 100]
                                   [--race 1000]

Three real Synapses with the module (``bcrypt_rounds: 4``): ``on`` and ``other`` ask a real
portal before an account is created (``placement``), ``off`` has the same config without
``placement``. The portal's directory asks the two modules (no admin token).

1. **A registration with enforcement vs without**: fresh names registered directly (the
   two user-interactive steps, on kept connections) alternately at ``on`` and at ``off``;
   what the ask adds is the median of the per-pair differences of the whole registration
   (target: < 5 ms on loopback). A registration asks once for a name nobody holds (the
   directory asks both modules, then one set-if-absent).
2. **What an ask for a known answer costs the portal**: ``--asks`` asks by ``on`` for a name
   it holds (the directory's answer cached), against as many ``GET /health`` on the same
   kept connection, interleaved in blocks: the portal's CPU per request of each, from
   ``/proc`` (target: an ask < 100 us of the portal's CPU).
3. **A race**: ``--race`` asks for ``--names`` new names, from ``on`` and ``other`` at once
   (50 threads): how many names were told yes to both homeservers (target: none), and how
   many reservations were made (target: ``--names``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import secrets
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from portal_loadgen import cpu_seconds, median, percentile  # noqa: E402

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess  # noqa: E402
from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess  # noqa: E402
from synapse_base_cs_url.core.placement_protocol import ASK_PATH  # noqa: E402

REGISTER = "/_matrix/client/v3/register"
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
            },
        )

    homeservers = {"on": synapse("on", True), "other": synapse("other", True)}
    off = synapse("off", False)
    portal.rewrite_config(
        {
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
    )
    try:
        portal.start()
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda hs: hs.start(), [*homeservers.values(), off]))
        registrations(homeservers["on"], off, args.registrations)
        ask_cost(portal, homeservers["on"], secret["on"], args.asks)
        race(portal, secret, args.names, args.race)
    finally:
        for hs in [*homeservers.values(), off]:
            hs.stop()
        portal.stop()
    return 0


def registrations(on: SynapseProcess, off: SynapseProcess, count: int) -> None:
    conns = {"on": connection(on.base_url), "off": connection(off.base_url)}
    for i in range(5):  # warm both
        for name, conn in conns.items():
            register(conn, f"warm{i}{name}")
    times: dict[str, list[float]] = {"on": [], "off": []}
    for i in range(count):
        for name in random.Random(i).sample(["on", "off"], 2):
            times[name].append(register(conns[name], f"user{i}x{name}"))
    pairs = median([a - b for a, b in zip(times["on"], times["off"], strict=True)])
    print(f"1. a registration, {count} pairs (bcrypt_rounds: 4):")
    for name in ("on", "off"):
        p50, p99 = percentile(times[name], 50), percentile(times[name], 99)
        print(f"   {name:3} p50 {p50 * MS:7.2f} ms  p99 {p99 * MS:7.2f} ms")
    print(f"   the ask adds, median of pairs: {pairs * MS:+.2f} ms   (target < 5 ms)")


def ask_cost(portal: PortalProcess, on: SynapseProcess, secret: str, count: int) -> None:
    register(connection(on.base_url), "held")
    conn = connection(portal.url)
    auth = {"Authorization": f"Bearer {secret}"}
    post(conn, ASK_PATH, {"localpart": "held"}, **auth)  # the directory's answer cached
    cpu: dict[str, float] = {"ask": 0.0, "health": 0.0}
    block = 200
    for i in range(max(1, count // block)):
        for kind in random.Random(i).sample(["ask", "health"], 2):
            before = cpu_seconds(portal.pid)
            for _ in range(block):
                if kind == "ask":
                    status, answer = post(conn, ASK_PATH, {"localpart": "held"}, **auth)
                    assert status == 200 and answer == {"allowed": True}, answer
                else:
                    conn.request("GET", "/health")
                    conn.getresponse().read()
            cpu[kind] += cpu_seconds(portal.pid) - before
    n = max(1, count // block) * block
    ask, health = cpu["ask"] / n, cpu["health"] / n
    print(f"2. the portal's CPU per request, {n} of each (10 ms ticks, summed per block):")
    print(
        f"   an ask with the answer cached {ask * US:6.0f} us   GET /health {health * US:6.0f} us"
    )
    print(f"   the ask's own cost: {(ask - health) * US:+.0f} us   (target < 100 us)")


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


if __name__ == "__main__":
    sys.exit(main())
