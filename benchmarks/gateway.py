"""The client-server gateway's cost, measured side by side in one run.

    python benchmarks/gateway.py [--requests 1000] [--big-mb 50] [--polls 1000]

One throwaway Synapse; in front of it the portal (``client_api: proxy``), an nginx using
the portal's decision endpoint (``docs/nginx-gateway.conf``) and a plain nginx proxying
straight to Synapse. Reported:

1. a small authenticated GET (``/account/whoami``) directly, via the portal, via plain
   nginx and via nginx + the decision endpoint (decisions cached), interleaved: p50, p99
   and what each hop adds (targets: the portal < 1 ms, the decision < 0.3 ms);
2. a 50 MB upload and download directly and via the portal, alternating: throughput
   and the portal's peak memory growth (target: >= 80% of direct);
3. 1,000 idle ``/sync`` long-polls held through the portal at once: the portal's memory
   and CPU while they wait.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from portal_loadgen import cpu_seconds, median, percentile  # noqa: E402

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess  # noqa: E402
from synapse_base_cs_url._dev.throwaway_synapse import (  # noqa: E402
    SynapseProcess,
    free_port,
    terminate,
)
from tests.harness.memory import PeakMemory, rss  # noqa: E402
from tests.harness.nginx import NginxProcess, nginx_binary  # noqa: E402

PASSWORD = "benchmark password"
WHOAMI = "/_matrix/client/v3/account/whoami"


def start_plain_nginx(hs_port: int) -> tuple[object, str, Path]:
    """nginx proxying everything straight to Synapse: the baseline for the decision's cost."""
    import subprocess

    workdir = Path(tempfile.mkdtemp(prefix="bench-nginx-plain-"))
    for name in ("logs", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / name).mkdir()
        (workdir / name).chmod(0o777)
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"daemon off;\nworker_processes 1;\npid {workdir}/nginx.pid;\n"
        f"error_log {workdir}/logs/error.log;\nevents {{ worker_connections 1024; }}\n"
        f"http {{ access_log off; client_body_temp_path {workdir}/body; "
        f"proxy_temp_path {workdir}/proxy; fastcgi_temp_path {workdir}/fastcgi; "
        f"uwsgi_temp_path {workdir}/uwsgi; scgi_temp_path {workdir}/scgi;\n"
        f"  upstream hs {{ server 127.0.0.1:{hs_port}; keepalive 16; }}\n"
        f"  server {{ listen 127.0.0.1:{port}; client_max_body_size 100m;\n"
        "    location / { proxy_pass http://hs; proxy_http_version 1.1; "
        'proxy_set_header Connection ""; proxy_request_buffering off; proxy_buffering off; }\n'
        "  }\n}\n"
    )
    proc = subprocess.Popen([nginx_binary(), "-p", str(workdir), "-c", str(conf)])
    time.sleep(0.5)
    return proc, f"http://127.0.0.1:{port}", workdir


def get(conn: http.client.HTTPConnection, path: str, token: str) -> float:
    started = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status}")
    return elapsed


def connection(url: str) -> http.client.HTTPConnection:
    host, port = url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=120)


def small_gets(urls: dict[str, str], token: str, count: int) -> None:
    conns = {name: connection(url) for name, url in urls.items()}
    for _ in range(50):  # warm-up: connections, the token learnt, the decision cached
        for conn in conns.values():
            get(conn, WHOAMI, token)
    times: dict[str, list[float]] = {name: [] for name in urls}
    names = list(urls)
    for i in range(count):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            times[name].append(get(conns[name], WHOAMI, token))
    ms = 1000
    print(f"\n1. {count} authenticated GET {WHOAMI} each way, interleaved, keep-alive:")
    for name in names:
        print(
            f"   {name:32s} p50 {percentile(times[name], 50) * ms:6.3f} ms"
            f"   p99 {percentile(times[name], 99) * ms:6.3f} ms"
        )

    def added(over: str, base: str) -> str:
        p50 = (percentile(times[over], 50) - percentile(times[base], 50)) * ms
        pairs = median([a - b for a, b in zip(times[over], times[base], strict=True)]) * ms
        return f"{p50:+.3f} ms at p50 (pairs {pairs:+.3f} ms)"

    print(f"   the portal adds {added('via the portal', 'Synapse directly')}  (target < 1 ms)")
    print(
        f"   the decision adds {added('nginx + decision (cached)', 'plain nginx')}"
        "  (target < 0.3 ms)"
    )


def upload(url: str, token: str, data: bytes) -> tuple[float, str]:
    conn = connection(url)
    started = time.perf_counter()
    conn.request(
        "POST",
        "/_matrix/media/v3/upload?filename=bench.bin",
        body=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
    )
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"upload: {response.status} {body[:200]!r}")
    return elapsed, re.search(rb'"(mxc://[^"]+)"', body).group(1).decode()  # type: ignore[union-attr]


def download(url: str, token: str, mxc: str) -> tuple[float, int]:
    server, media_id = mxc.removeprefix("mxc://").split("/")
    conn = connection(url)
    started = time.perf_counter()
    conn.request(
        "GET",
        f"/_matrix/client/v1/media/download/{server}/{media_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    response = conn.getresponse()
    got = 0
    while chunk := response.read(256 * 1024):
        got += len(chunk)
    return time.perf_counter() - started, got


def big_files(direct: str, portal: PortalProcess, token: str, size: int, rounds: int) -> None:
    data = os.urandom(size)
    rates: dict[str, list[float]] = {
        f"{kind} {where}": [] for kind in ("up", "down") for where in ("direct", "portal")
    }
    growth = 0
    for i in range(rounds):
        order = [("direct", direct), ("portal", portal.url)]
        for where, url in order if i % 2 == 0 else order[::-1]:
            peak = PeakMemory(portal.pid) if where == "portal" else None
            seconds, mxc = upload(url, token, data)
            rates[f"up {where}"].append(size / seconds / 1e6)
            seconds, got = download(url, token, mxc)
            assert got == size
            rates[f"down {where}"].append(size / seconds / 1e6)
            if peak is not None:
                growth = max(growth, peak.stop())
    mb = size / 1024 / 1024
    print(f"\n2. {mb:.0f} MB upload then download, {rounds} rounds alternating:")
    for kind in ("up", "down"):
        d, p = median(rates[f"{kind} direct"]), median(rates[f"{kind} portal"])
        print(f"   {kind:4s} direct {d:7.1f} MB/s   via the portal {p:7.1f} MB/s   {p / d:6.1%}")
    print(f"   the portal's peak memory growth during a round: {growth / 1e6:.1f} MB")


async def hold_polls(portal_url: str, token: str, since: str, count: int, seconds: float) -> int:
    host, port = portal_url.removeprefix("http://").split(":")
    request = (
        f"GET /_matrix/client/v3/sync?since={since}&timeout={int(seconds * 1000) + 60000} "
        f"HTTP/1.1\r\nHost: portal\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        writers.append(writer)
    await asyncio.sleep(seconds)
    for writer in writers:
        writer.close()
    return len(writers)


def idle_polls(portal: PortalProcess, token: str, since: str, count: int) -> None:
    before, cpu_before = rss(portal.pid), cpu_seconds(portal.pid)
    hold = 20.0
    result: list[int] = []

    def hold_them() -> None:
        result.append(asyncio.run(hold_polls(portal.url, token, since, count, hold)))

    thread = threading.Thread(target=hold_them)
    thread.start()
    time.sleep(hold / 2)
    during, cpu_mid = rss(portal.pid), cpu_seconds(portal.pid)
    time.sleep(hold / 4)
    cpu_late = cpu_seconds(portal.pid)
    thread.join()
    print(f"\n3. {count} idle /sync long-polls held through the portal at once:")
    print(
        f"   portal memory {before / 1e6:.1f} MB before, {during / 1e6:.1f} MB while they wait "
        f"(+{(during - before) / count / 1024:.1f} kB each)"
    )
    print(
        f"   portal CPU while they wait: {(cpu_late - cpu_mid) / (hold / 4) * 100:.1f}% of a core"
        f" (opening them all: {cpu_mid - cpu_before:.2f} CPU-s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--big-mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--polls", type=int, default=1000)
    args = parser.parse_args()
    hs = SynapseProcess("bench.localhost", extra_pythonpath=[str(HERE.parent)])
    hs.config["max_upload_size"] = "200M"
    hs.config["rc_message"] = {"per_second": 10000, "burst_count": 10000}
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    portal = PortalProcess(
        {
            "public_baseurl": "https://matrix.example.com",
            "mode": "proxy",
            "client_api": "proxy",
            "homeservers": {"hs": {"base_url": hs.base_url}},
            "default_homeserver": "hs",
            "connections": {"max": args.polls + 100},
        },
        workdir,
    )
    nginx = plain = None
    try:
        hs.start()
        hs.register_user("bench", PASSWORD)
        portal.start()
        login = hs.password_login("bench", PASSWORD).json()
        token = login["access_token"]
        nginx = NginxProcess(portal.port).start()
        plain, plain_url, _ = start_plain_nginx(hs.port)
        small_gets(
            {
                "Synapse directly": hs.base_url,
                "via the portal": portal.url,
                "plain nginx": plain_url,
                "nginx + decision (cached)": nginx.url,
            },
            token,
            args.requests,
        )
        big_files(hs.base_url, portal, token, args.big_mb * 1024 * 1024, args.rounds)
        conn = connection(hs.base_url)
        conn.request("GET", "/_matrix/client/v3/sync", headers={"Authorization": f"Bearer {token}"})
        answer = conn.getresponse().read()
        since = re.search(rb'"next_batch":\s*"([^"]+)"', answer)
        assert since is not None
        idle_polls(portal, token, since.group(1).decode(), args.polls)
    finally:
        if nginx is not None:
            nginx.stop()
        if plain is not None:
            terminate(plain, grace=5)  # type: ignore[arg-type]
        portal.stop()
        hs.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
