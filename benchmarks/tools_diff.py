"""``synapse-base-cs-url diff`` over many user ids: wall clock, CPU, and who moves.

    python -m benchmarks.tools_diff [--users 1000000]

Two ``homeserver.yaml`` files with five rules, the second adding a fourth member to the
first's 3-member hash pool; ``--users`` user ids (``@user0:example.com`` ...) on standard
input, as an operator pipes them. About 1/4 of the pool's users should move (rendezvous
hashing moves only those the new member wins).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import yaml

from synapse_base_cs_url.cli import build_parser
from synapse_base_cs_url.tools.commands import run

POOL = ["https://a.example.com", "https://b.example.com", "https://c.example.com"]


def homeserver_yaml(pool: list[str]) -> dict[str, object]:
    rules = [
        {
            "name": "internal",
            "match": {"client_ip": ["10.0.0.0/8"]},
            "base_cs_url": "https://i.example.com",
        },
        {
            "name": "bridges",
            "match": {"login_type": "m.login.application_service"},
            "base_cs_url": "http://synapse:8008",
        },
        {
            "name": "eu",
            "match": {"user_id": "@eu_.*:example\\.com"},
            "base_cs_url": "https://eu.example.com",
        },
        {"name": "ops", "match": {"localpart": "ops-.*"}, "base_cs_url": "https://ops.example.com"},
        {"name": "pool", "match": {"localpart": ".*"}, "pool": pool},
    ]
    module = {
        "module": "synapse_base_cs_url.BaseCsUrlModule",
        "config": {"base_cs_url": "https://example.com", "rules": rules},
    }
    return {"server_name": "example.com", "modules": [module]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old, new = Path(tmp) / "old.yaml", Path(tmp) / "new.yaml"
        old.write_text(yaml.safe_dump(homeserver_yaml(POOL)))
        new.write_text(yaml.safe_dump(homeserver_yaml([*POOL, "https://d.example.com"])))
        users = "".join(f"@user{i}:example.com\n" for i in range(args.users))
        argv = ["diff", "--config", str(old), "--config", str(new), "--users", "-", "--show", "0"]
        out, err = io.StringIO(), io.StringIO()
        stdin, sys.stdin = sys.stdin, io.StringIO(users)
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            status = run(build_parser().parse_args(argv), out, err)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            sys.stdin = stdin
    if status != 0:
        raise SystemExit(err.getvalue())
    print(out.getvalue().strip())
    print(f"\n{args.users} users: {wall:.1f} s wall clock, {cpu:.1f} s CPU")
    print(f"  {wall / args.users / 2 * 1e6:.1f} us per user per config")


if __name__ == "__main__":
    main()
