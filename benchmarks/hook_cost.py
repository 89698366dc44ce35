"""The login hook's own cost per call, in microseconds.

    python -m benchmarks.hook_cost [--calls 5000] [--blocks 15] [--compare-with DIR]

A real ``BaseCsUrlModule`` is built from a parsed config and its hook is installed, by the
module's own code, around a stand-in servlet whose ``on_POST`` returns a canned Synapse
login response at once. So the difference between calling the wrapped and the bare
``on_POST`` is exactly what the module adds to a login: looking up the hook, re-reading the
request body, choosing the URL, writing the response, counting. Wrapped and bare calls
alternate in blocks within one run; the machine is noisy, so the median of blocks is used.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from synapse_base_cs_url.synapse_module import _synapse_internals as internals
from synapse_base_cs_url.synapse_module.module import BaseCsUrlModule

BODY = json.dumps(
    {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "secret",
        "initial_device_display_name": "benchmark",
    }
).encode()
RESPONSE = {
    "user_id": "@alice:example.com",
    "access_token": "syt_YWxpY2U_benchmark_token",
    "home_server": "example.com",
    "device_id": "ABCDEFGHIJ",
    "well_known": {"m.homeserver": {"base_url": "https://example.com/"}},
}

CONFIGS: dict[str, dict[str, Any]] = {
    "static URL": {"base_cs_url": "https://cs.example.com"},
    "4 rules + hash pool": {
        "base_cs_url": "https://cs.example.com",
        "rules": [
            {
                "match": {"client_ip": ["10.0.0.0/8", "fd00::/8"]},
                "base_cs_url": "https://in.example",
            },
            {
                "match": {"login_type": "m.login.application_service"},
                "base_cs_url": "http://as:8008",
            },
            {"match": {"user_id": "@.*:eu\\.example\\.com"}, "base_cs_url": "https://eu.example"},
            {"pool": ["https://a.example", "https://b.example", "https://c.example"]},
        ],
    },
}


class Request:
    """What the hook reads of Synapse's request: the body and the client address."""

    def __init__(self) -> None:
        self.content = io.BytesIO(BODY)

    def getClientAddress(self) -> SimpleNamespace:
        return SimpleNamespace(host="192.0.2.7")


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never really suspends, without an event loop's overhead."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine suspended")


def per_call_us(call: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def measure(name: str, config: dict[str, Any], calls: int, blocks: int) -> dict[str, Any]:
    class HomeServer:  # stands in for synapse.server.HomeServer: weakly referenceable
        pass

    hs = HomeServer()
    api = SimpleNamespace(_hs=hs, public_baseurl="https://example.com/", server_name=name)

    class Servlet:
        def __init__(self) -> None:
            self.hs = hs

        async def on_POST(self, request: Any) -> tuple[int, dict[str, Any]]:
            return 200, dict(RESPONSE)

    bare = Servlet.on_POST
    BaseCsUrlModule(BaseCsUrlModule.parse_config(config), api)  # type: ignore[arg-type]
    internals._install_wrapper(Servlet, internals.LOGIN)
    wrapped = Servlet.on_POST
    servlet = Servlet()
    result = drive(wrapped(servlet, Request()))
    assert "base_cs_url" in result[1], result

    bare_us, wrapped_us = [], []
    for _ in range(blocks):
        bare_us.append(per_call_us(lambda: drive(bare(servlet, Request())), calls))
        wrapped_us.append(per_call_us(lambda: drive(wrapped(servlet, Request())), calls))
    b, w = statistics.median(bare_us), statistics.median(wrapped_us)
    return {
        "bare_on_POST_us": round(b, 2),
        "wrapped_us": round(w, 2),
        "hook_cost_us": round(w - b, 2),
    }


def run_checkout(directory: Path, calls: int) -> dict[str, Any]:
    """One block of a checkout's own ``benchmarks/hook_cost.py``, in a process of its own
    with that checkout's package first on the path."""
    env = {**os.environ, "PYTHONPATH": str(directory)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.hook_cost", "--calls", str(calls), "--blocks", "1"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def compare(other: Path, calls: int, rounds: int) -> None:
    """This checkout and ``other`` alternating, one block each per round, so that both see
    the machine at the same moments; the median of the rounds, and their ratio."""
    here = Path(__file__).resolve().parent.parent
    costs: dict[str, dict[str, list[float]]] = {"this": {}, "other": {}}
    for _ in range(rounds):
        for label, directory in (("this", here), ("other", other)):
            for name, figures in run_checkout(directory, calls).items():
                costs[label].setdefault(name, []).append(figures["hook_cost_us"])
    print(f"hook cost per call, median of {rounds} alternating rounds of {calls} calls")
    print(f"  {'config':24} {'--compare-with':>15} {'this':>10} {'ratio':>8}")
    for name in costs["this"]:
        mine = statistics.median(costs["this"][name])
        theirs = statistics.median(costs["other"].get(name, [float("nan")]))
        print(f"  {name:24} {theirs:12.2f} us {mine:7.2f} us {theirs / mine:7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--blocks", type=int, default=15)
    parser.add_argument(
        "--compare-with", type=Path, help="another checkout's directory, run side by side"
    )
    args = parser.parse_args()
    if args.compare_with is not None:
        compare(args.compare_with.resolve(), args.calls, args.blocks)
        return
    results = {name: measure(name, cfg, args.calls, args.blocks) for name, cfg in CONFIGS.items()}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
