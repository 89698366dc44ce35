"""What the Redis state backend adds to single sign-on: an SSO callback (the portal records
which homeserver issued the login token) and the token login (the portal takes that record)
through a portal with ``state.backend: redis`` vs one with the in-memory store.

    python benchmarks/portal_sso_state.py [--logins 2000]

Two portals (redirect mode, the same signing key), a throwaway Redis for one of them, one
keep-alive connection to each; the benchmark signs callback URLs itself (as a homeserver's
SSO redirect would carry them). Each iteration is a callback (302 to the client) and the
token login (307 to the issuer), timed as a pair, alternating between the portals. Reported:
p50 and p99 per backend and the difference (target: Redis adds < 1 ms at p50).
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from portal_loadgen import median, percentile  # noqa: E402

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess  # noqa: E402
from synapse_base_cs_url.portal.sso.callback import CallbackSigner, callback_url  # noqa: E402
from tests.harness.services import RedisServer  # noqa: E402

LOGIN_PATH = "/_matrix/client/v3/login"
CLIENT = "https://app.example/after-sso"


def config(key: Path, state: dict[str, object]) -> dict[str, object]:
    return {
        "public_baseurl": "https://replaced.invalid",
        "mode": "redirect",
        "homeservers": {
            "hs1": {"base_url": "https://hs1.example.com"},
            "hs2": {"base_url": "https://hs2.example.com"},
        },
        "default_homeserver": "hs1",
        "state": state,
        "sso": {
            "identity_providers": {"cas": "hs2"},
            "client_whitelist": [CLIENT],
            "signing_key_file": str(key),
        },
    }


def sso_pair(
    conn: http.client.HTTPConnection, portal: PortalProcess, signer: CallbackSigner
) -> float:
    token = "syl_" + secrets.token_urlsafe(18)
    url = callback_url(portal.url, signer, "hs2", CLIENT, time.time())
    path = urllib.parse.urlsplit(url)
    target = f"{path.path}?{path.query}&loginToken={token}"
    body = json.dumps({"type": "m.login.token", "token": token}).encode()
    started = time.perf_counter()
    conn.request("GET", target)
    callback = conn.getresponse()
    callback.read()
    conn.request("POST", LOGIN_PATH, body, {"Content-Type": "application/json"})
    login = conn.getresponse()
    login.read()
    elapsed = time.perf_counter() - started
    if callback.status != 302 or login.status != 307:
        raise RuntimeError(f"callback {callback.status}, token login {login.status}")
    if not (login.getheader("Location") or "").startswith("https://hs2.example.com"):
        raise RuntimeError("the token login did not go to its issuer")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--logins", type=int, default=2000, help="SSO pairs per backend")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-sso-state-"))
    key = workdir / "signing.key"
    key.write_bytes(secrets.token_bytes(32))
    signer = CallbackSigner(key.read_bytes())
    redis = RedisServer().start()
    url = f"redis://127.0.0.1:{redis.port}/0"
    portals = {
        "memory": PortalProcess(config(key, {"backend": "memory"}), workdir / "memory"),
        "redis": PortalProcess(config(key, {"backend": "redis", "url": url}), workdir / "redis"),
    }
    try:
        for portal in portals.values():
            portal.workdir.mkdir()
            portal.config["public_baseurl"] = portal.url
            portal.start()
        conns = {
            name: http.client.HTTPConnection("127.0.0.1", p.port, timeout=30)
            for name, p in portals.items()
        }
        for _ in range(100):  # warm-up
            for name, portal in portals.items():
                sso_pair(conns[name], portal, signer)
        times: dict[str, list[float]] = {name: [] for name in portals}
        names = list(portals)
        for i in range(args.logins):
            for name in names[i % 2 :] + names[: i % 2]:
                times[name].append(sso_pair(conns[name], portals[name], signer))
        ms = 1000
        print(
            f"{args.logins} SSO callbacks + token logins per backend, interleaved, "
            "keep-alive connections:"
        )
        for name in names:
            p50, p99 = (percentile(times[name], q) * ms for q in (50, 99))
            print(f"  {name:8s} p50 {p50:6.3f} ms   p99 {p99:6.3f} ms")
        deltas = [r - m for r, m in zip(times["redis"], times["memory"], strict=True)]
        added = (percentile(times["redis"], 50) - percentile(times["memory"], 50)) * ms
        print(
            f"  Redis adds {added:.3f} ms at p50 (median of pair differences "
            f"{median(deltas) * ms:.3f} ms; target < 1 ms)"
        )
    finally:
        for portal in portals.values():
            portal.stop()
        redis.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
