"""``diff`` on real config files: counts per target, who moves when a pool grows (about 1/N),
nothing moves between equal configs, round-robin pools are a rotation, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.harness.cli import run_tool

MODULE = "synapse_base_cs_url.BaseCsUrlModule"


def module_file(tmp_path: Path, name: str, pool: list[str], strategy: str = "hash") -> str:
    rules = [
        {"name": "eu", "match": {"user_id": "@.*:eu\\.x"}, "base_cs_url": "https://eu.x"},
        {"name": "pool", "pool": pool, "strategy": strategy},
    ]
    raw = {
        "server_name": "example.com",
        "modules": [{"module": MODULE, "config": {"base_cs_url": "https://cs.x", "rules": rules}}],
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def users_file(tmp_path: Path, count: int, extra: list[str] | None = None) -> str:
    path = tmp_path / "users.txt"
    lines = [f"@user{i}:example.com" for i in range(count)] + (extra or [])
    path.write_text("\n".join(lines) + "\n")
    return str(path)


THREE = ["https://a.x", "https://b.x", "https://c.x"]
FOUR = [*THREE, "https://d.x"]


def test_adding_a_pool_member_moves_about_one_in_n(tmp_path: Path) -> None:
    old = module_file(tmp_path, "old.yaml", THREE)
    new = module_file(tmp_path, "new.yaml", FOUR)
    moves = tmp_path / "moves.tsv"
    ran = run_tool(
        "diff",
        "-c",
        old,
        "-c",
        new,
        "--users",
        users_file(tmp_path, 20_000),
        "--moves",
        str(moves),
        "--show",
        "2",
    )
    assert ran.status == 0, ran.err
    moved = [line.split("\t") for line in moves.read_text().splitlines()]
    # Rendezvous hashing: only the new member takes users, about a quarter of them.
    assert 0.23 * 20_000 < len(moved) < 0.27 * 20_000
    assert {after for _, _, after in moved} == {"https://d.x"}
    assert f"{len(moved)} users move" in ran.out
    assert "20000 users;" in ran.out
    assert f"https://d.x          0  {len(moved):9d}  {len(moved):+9d}" in ran.out
    assert ran.out.count(" -> https://d.x") == 2
    assert f"... and {len(moved) - 2} more" in ran.out


def test_the_same_config_moves_nobody(tmp_path: Path) -> None:
    old = module_file(tmp_path, "old.yaml", THREE)
    ran = run_tool("diff", "-c", old, "-c", old, "--users", users_file(tmp_path, 3000))
    assert "0 users move (0.0%)" in ran.out


def test_round_robin_pools_are_a_rotation_not_moves(tmp_path: Path) -> None:
    old = module_file(tmp_path, "old.yaml", THREE, "round_robin")
    ran = run_tool("diff", "-c", old, "-c", old, "--users", users_file(tmp_path, 100))
    assert "(round robin: https://a.x, https://b.x, https://c.x)" in ran.out
    assert "0 users move" in ran.out


def test_lines_that_are_not_user_ids_are_skipped_and_counted(tmp_path: Path) -> None:
    old = module_file(tmp_path, "old.yaml", THREE)
    users = users_file(tmp_path, 10, ["alice", "", "@eve:eu.x"])
    ran = run_tool("diff", "-c", old, "-c", old, "--users", users)
    assert "11 users;" in ran.out
    assert "https://eu.x" in ran.out
    assert "1 lines skipped: not user ids (@localpart:server), e.g. 'alice'" in ran.out


def test_portal_configs_and_mismatched_kinds(tmp_path: Path) -> None:
    portal: dict[str, Any] = {
        "public_baseurl": "https://p.x",
        "homeservers": {"hs1": {"base_url": "https://hs1.x"}, "hs2": {"base_url": "https://hs2.x"}},
        "routes": [{"pool": ["hs1", "hs2"]}],
        "default_homeserver": "hs1",
    }
    path = tmp_path / "portal.yaml"
    path.write_text(yaml.safe_dump(portal))
    users = users_file(tmp_path, 1000)
    ran = run_tool("diff", "-c", str(path), "-c", str(path), "--users", users)
    assert "hs1 (https://hs1.x)" in ran.out
    ran = run_tool(
        "diff", "-c", str(path), "-c", module_file(tmp_path, "m.yaml", THREE), "--users", users
    )
    assert ran.status == 2
    assert "is a portal config but" in ran.err
    assert run_tool("diff", "-c", str(path), "--users", users).status == 2
    ran = run_tool("diff", "-c", str(path), "-c", str(path), "--users", str(tmp_path / "none"))
    assert ran.status == 2
    assert "synapse-base-cs-url diff: cannot read" in ran.err


def test_a_portal_with_the_directory_keeps_existing_accounts(tmp_path: Path) -> None:
    homeservers: dict[str, Any] = {}
    for name in ("hs1", "hs2", "hs3"):
        token = tmp_path / f"{name}.token"
        token.write_text("syt_admin")
        homeservers[name] = {
            "base_url": f"https://{name}.x",
            "server_name": f"{name}.x",
            "admin_token_file": str(token),
        }

    def portal(name: str, pool: list[str]) -> str:
        raw = {
            "public_baseurl": "https://p.x",
            "homeservers": homeservers,
            "routes": [{"pool": pool}],
            "default_homeserver": "hs1",
        }
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw))
        return str(path)

    old, new = portal("old.yaml", ["hs1", "hs2"]), portal("new.yaml", ["hs1", "hs2", "hs3"])
    lines = [f"user{i}" for i in range(300)] + [f"u{i}@mail.x" for i in range(300)]
    users = tmp_path / "users.txt"
    users.write_text("\n".join([*lines, "@bob:hs2.x", "two words"]))
    ran = run_tool("diff", "-c", old, "-c", new, "--users", str(users))
    assert "601 users;" in ran.out  # localparts, addresses and a user id; not "two words"
    assert "but NEW has the account directory on: existing accounts are found where" in ran.out
    assert "1 lines skipped" in ran.out
    # About a third would be placed on hs3 by the routes; the user id names its server.
    moved = int(ran.out.split(" would move by the routes")[0].rsplit("\n", 1)[-1])
    assert 150 < moved < 250
