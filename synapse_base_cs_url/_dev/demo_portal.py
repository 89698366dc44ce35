"""``synapse-base-cs-url demo --portal``: two homeservers behind the login portal.

Starts two throwaway Synapses with the module (``hs1.localhost``, ``hs2.localhost``) and a
portal in ``auto`` mode in front of them, then logs in twice through the portal, side by side:

- alice (hs1) with a browser-like User-Agent: the portal answers ``307`` to hs1, the client
  re-sends its ``POST /login`` there, and hs1 answers;
- bob (hs2) with Dart's User-Agent (which cannot follow a 307 on POST): the portal proxies
  the login to hs2 and relays hs2's answer.

Both answers name the homeserver the user must talk to from now on. Then a pool grows:
users placed on hs1 by a one-member pool log in by bare name through a portal whose pool is
now ``[hs1, hs2]``; the routes alone would send some of them to hs2, where they have no
account, but the account directory (the homeservers' admin API) finds every one on hs1.
Everything is removed at the end.
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from synapse_base_cs_url._dev.demo import highlight_json
from synapse_base_cs_url._dev.throwaway_portal import PortalProcess
from synapse_base_cs_url._dev.throwaway_synapse import (
    HttpResult,
    SynapseProcess,
    SynapseStartupError,
    http_request,
)
from synapse_base_cs_url.core import rendezvous_pick

LOGIN_PATH = "/_matrix/client/v3/login"
BROWSER_UA = "Mozilla/5.0 (demo) Chrome/130"
DART_UA = "Dart/3.5 (dart:io)"


def _homeserver(name: str, *, x_forwarded: bool) -> SynapseProcess:
    hs = SynapseProcess(name, extra_pythonpath=[str(Path(__file__).resolve().parents[1])])
    hs.config["modules"] = [
        {"module": "synapse_base_cs_url.BaseCsUrlModule", "config": {"base_cs_url": hs.base_url}}
    ]
    hs.config["listeners"][0]["x_forwarded"] = x_forwarded
    return hs


def _login(portal: PortalProcess, user: str, password: str, user_agent: str) -> HttpResult:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }
    headers = {"User-Agent": user_agent}
    return http_request("POST", portal.url + LOGIN_PATH, body, headers=headers)


def _show(title: str, steps: list[str], result: HttpResult, out: TextIO) -> None:
    print(f"\n=== {title} ===", file=out)
    for step in steps:
        print(f"  {step}", file=out)
    print(f"  HTTP {result.status}", file=out)
    if result.status == 200:
        body: dict[str, Any] = result.json()
        print("\n".join("  " + line for line in highlight_json(body, out).splitlines()), file=out)


GROWN_POOL_USERS = [f"user{i}" for i in range(8)]


def _admin_token(hs: SynapseProcess, password: str, path: Path) -> str:
    admin = hs.register_user("portal-directory", password, admin=True)
    path.write_text(hs.password_login(admin, password).json()["access_token"])
    path.chmod(0o600)
    return str(path)


def _pool_grows(
    hs1: SynapseProcess, hs2: SynapseProcess, password: str, workdir: Path, out: TextIO
) -> bool:
    """Users placed by a pool of one, the pool grown to two: nobody is lost."""
    for user in GROWN_POOL_USERS:
        hs1.register_user(user, password)
    homeservers = {
        name: {
            "base_url": hs.base_url,
            "server_name": hs.server_name,
            "admin_token_file": _admin_token(hs, password, workdir / f"{name}.token"),
        }
        for name, hs in (("hs1", hs1), ("hs2", hs2))
    }
    grown = PortalProcess(
        {
            "public_baseurl": "https://matrix.example.com",
            "mode": "redirect",
            "homeservers": homeservers,
            "routes": [{"name": "pool", "pool": ["hs1", "hs2"], "strategy": "hash"}],
            "default_homeserver": "hs1",
        },
        workdir / "grown",
    )
    (workdir / "grown").mkdir()
    would_move = [u for u in GROWN_POOL_USERS if rendezvous_pick(["hs1", "hs2"], u) == "hs2"]
    print("\n=== THE POOL GROWS: nobody is lost ===", file=out)
    print(f"  {len(GROWN_POOL_USERS)} users were placed on hs1 by the pool [hs1].", file=out)
    print(
        f"  The pool is now [hs1, hs2]: by the routes alone {len(would_move)} of them "
        f"({', '.join(would_move)}) would be sent to hs2, where they have no account.",
        file=out,
    )
    try:
        grown.start()
        found = []
        for user in GROWN_POOL_USERS:
            answer = _login(grown, user, password, BROWSER_UA)
            found.append(answer.headers.get("Location", "").split(LOGIN_PATH)[0])
        on_hs1 = sum(1 for url in found if url == hs1.base_url)
        print(
            f"  With the account directory: {on_hs1} of {len(GROWN_POOL_USERS)} sent to hs1, "
            "where their accounts are (route=directory):",
            file=out,
        )
        for line in grown.logs().splitlines():
            if " login route=" in line:
                print("  " + line.split(": ", 1)[-1], file=out)
                break
        return on_hs1 == len(GROWN_POOL_USERS)
    finally:
        grown.stop()


def run_portal_demo(*, keep: bool = False, out: TextIO = sys.stdout) -> int:
    started = time.monotonic()
    password = secrets.token_urlsafe(12)
    hs1 = _homeserver("hs1.localhost", x_forwarded=False)
    hs2 = _homeserver("hs2.localhost", x_forwarded=True)
    workdir = Path(tempfile.mkdtemp(prefix="throwaway-portal-"))
    portal = PortalProcess(
        {
            "public_baseurl": "https://matrix.example.com",
            "mode": "auto",
            "homeservers": {"hs1": {"base_url": hs1.base_url}, "hs2": {"base_url": hs2.base_url}},
            "routes": [
                {
                    "name": "hs2-users",
                    "match": {"user_id": "@.*:hs2\\.localhost"},
                    "homeserver": "hs2",
                }
            ],
            "default_homeserver": "hs1",
        },
        workdir,
    )
    print("Starting two throwaway Synapses (hs1, hs2) and the portal ...", file=out, flush=True)
    try:
        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(hs.start) for hs in (hs1, hs2)]:
                future.result()
        hs1.register_user("alice", password)
        hs2.register_user("bob", password)
        portal.start()
        print(f"  hs1    {hs1.base_url}  (user @alice:hs1.localhost)", file=out)
        print(f"  hs2    {hs2.base_url}  (user @bob:hs2.localhost)", file=out)
        print(f"  portal {portal.url}  mode=auto, route: @.*:hs2\\.localhost -> hs2", file=out)

        first = _login(portal, "alice", password, BROWSER_UA)
        steps = [f"POST {portal.url}{LOGIN_PATH}  user=alice  User-Agent: {BROWSER_UA}"]
        if first.status != 307:
            _show("REDIRECT", steps, first, out)
            return 1
        location = first.headers["Location"]
        steps.append(f"<- 307 Temporary Redirect  Location: {location}")
        steps.append(f"POST {location}  (the client re-sends the same body to hs1)")
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": password,
        }
        _show("REDIRECT: alice, a browser", steps, http_request("POST", location, body), out)

        second = _login(portal, "@bob:hs2.localhost", password, DART_UA)
        steps = [
            f"POST {portal.url}{LOGIN_PATH}  user=@bob:hs2.localhost  User-Agent: {DART_UA}",
            f"   portal -> POST {hs2.base_url}{LOGIN_PATH} (X-Forwarded-For: client) -> relayed",
        ]
        _show("PROXY: bob, a Dart client (no 307 on POST)", steps, second, out)
        if second.status != 200:
            return 1
        print("\nPortal log:", file=out)
        for line in portal.logs().splitlines():
            if " login route=" in line:
                print("  " + line.split(": ", 1)[-1], file=out)
        print(
            "\nEach client now talks to the base_cs_url / well_known it was given, not the portal.",
            file=out,
        )
        if not _pool_grows(hs1, hs2, password, workdir, out):
            return 1
    except (SynapseStartupError, RuntimeError) as e:
        print(str(e), file=out)
        return 1
    finally:
        portal.stop()
        for hs in (hs1, hs2):
            if keep:
                hs.stop()
            else:
                hs.cleanup()
        if keep:
            print(f"Kept {hs1.workdir}, {hs2.workdir} and {workdir}", file=out)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"Done in {time.monotonic() - started:.1f}s; everything is gone.", file=out)
    return 0
