"""What the sign-in page of a shared identity provider costs the portal: the SSO redirect of
a provider one homeserver offers (a 302), the redirect of a shared one (the page, rendered
with Jinja2), and the page's form sent back (the signed state checked, the identifier read
as a login, a 302), side by side on one portal over one keep-alive connection.

    python benchmarks/portal_sso_page.py [--rounds 2000]

Routes only (no account directory: its lookups are measured by ``directory.py``). Each
round sends the three requests in turn; reported: p50 and p99 of each, and each one's p50
as a ratio to the plain redirect's, measured in the same run.
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from portal_loadgen import median, percentile  # noqa: E402

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess  # noqa: E402

CLIENT = "https://app.example/after-sso"
QUERY = urllib.parse.urlencode({"redirectUrl": CLIENT})
REDIRECT = "/_matrix/client/v3/login/sso/redirect/"
SIGN_IN = "/_synapse_base_cs_url/sso/sign_in"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def config() -> dict[str, object]:
    return {
        "public_baseurl": "https://portal.example",
        "mode": "redirect",
        "homeservers": {
            "hs1": {"base_url": "https://hs1.example.com"},
            "hs2": {"base_url": "https://hs2.example.com"},
        },
        "routes": [{"name": "b", "match": {"localpart": "b.*"}, "homeserver": "hs2"}],
        "default_homeserver": "hs1",
        "sso": {"identity_providers": {"oidc-corp": ["hs1", "hs2"], "oidc-one": "hs2"}},
    }


def timed(conn: http.client.HTTPConnection, send: Callable[[], None], status: int) -> float:
    started = time.perf_counter()
    send()
    answer = conn.getresponse()
    answer.read()
    elapsed = time.perf_counter() - started
    if answer.status != status:
        raise RuntimeError(f"expected {status}, got {answer.status}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sso-page-bench-"))
    portal = PortalProcess(config(), workdir)
    portal.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=30)
        conn.request("GET", f"{REDIRECT}oidc-corp?{QUERY}")
        first = conn.getresponse()
        page = first.read()
        found = re.search(rb'name="state" value="([^"]+)"', page)
        assert found is not None, page[:300]
        form = urllib.parse.urlencode({"state": found.group(1).decode(), "identifier": "bea"})
        # The form cookie, as the browser keeps it (the state is bound to it).
        browser = {"Cookie": (first.getheader("Set-Cookie") or "").split(";")[0]}
        kinds: dict[str, list[float]] = {"redirect (one homeserver)": [], "page": [], "form": []}
        requests = {
            "redirect (one homeserver)": (
                lambda: conn.request("GET", f"{REDIRECT}oidc-one?{QUERY}"),
                302,
            ),
            "page": (
                lambda: conn.request("GET", f"{REDIRECT}oidc-corp?{QUERY}", headers=browser),
                200,
            ),
            "form": (lambda: conn.request("POST", SIGN_IN, form, {**FORM, **browser}), 302),
        }
        for _ in range(args.rounds):
            for kind, (send, status) in requests.items():
                kinds[kind].append(timed(conn, send, status))
        base = median(kinds["redirect (one homeserver)"])
        print(f"{args.rounds} rounds, one portal, one keep-alive connection")
        print(f"{'request':28} {'p50':>9} {'p99':>9} {'p50 / redirect':>15}")
        for kind, samples in kinds.items():
            p50, p99 = median(samples), percentile(samples, 99)
            print(f"{kind:28} {p50 * 1000:7.3f}ms {p99 * 1000:7.3f}ms {p50 / base:14.2f}x")
    finally:
        portal.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
