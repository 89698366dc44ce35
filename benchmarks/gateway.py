"""The client-server gateway's cost, measured side by side in one run.

    python benchmarks/gateway.py [--requests 1000] [--big-mb 50] [--rounds 3] [--polls 1000]
                                 [--compare-with DIR]

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

``--compare-with DIR`` also runs the portal of another checkout (and an nginx asking its
decision endpoint) in front of the same Synapse: in 1. and 2. its paths are interleaved with
the others, in 3. its long-polls are held after this portal's.
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
from statistics import fmean

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from portal_loadgen import cpu_seconds, median, percentile  # noqa: E402
from side_by_side import (  # noqa: E402
    LABELS,
    OTHER,
    THIS,
    add_compare_with,
    added,
    portal_versions,
    round_order,
    timed,
)

from synapse_base_cs_url._dev.throwaway_portal import PortalProcess  # noqa: E402
from synapse_base_cs_url._dev.throwaway_synapse import (  # noqa: E402
    SynapseProcess,
    free_port,
    terminate,
)
from tests.harness.memory import PeakMemory, rss  # noqa: E402
from tests.harness.nginx import NginxProcess, nginx_binary  # noqa: E402

PASSWORD = "benchmark password"
MS = 1000
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
    return timed(conn, "GET", path, headers={"Authorization": f"Bearer {token}"})


def connection(url: str) -> http.client.HTTPConnection:
    host, port = url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=120)


DIRECT, PLAIN_NGINX = "Synapse directly", "plain nginx"


def via(portal: str) -> str:
    return f"via {LABELS[portal]}"


def decision(portal: str) -> str:
    return f"nginx + decision of {LABELS[portal]}"


def small_gets(urls: dict[str, str], portals: list[str], token: str, count: int) -> None:
    conns = {name: connection(url) for name, url in urls.items()}
    for _ in range(50):  # warm-up: connections, the token learnt, the decision cached
        for conn in conns.values():
            get(conn, WHOAMI, token)
    times: dict[str, list[float]] = {name: [] for name in urls}
    names = list(urls)
    for i in range(count):
        for name in round_order(names, i):
            times[name].append(get(conns[name], WHOAMI, token))
    ms = 1000
    print(f"\n1. {count} authenticated GET {WHOAMI} each way, interleaved, keep-alive:")
    for name in names:
        print(
            f"   {name:45s} p50 {percentile(times[name], 50) * ms:6.3f} ms"
            f"   p99 {percentile(times[name], 99) * ms:6.3f} ms"
        )

    def adds(what: str, over: str, base: str, target: str) -> None:
        p50, pairs = added(times, over, base)
        print(
            f"   {what:45s} {p50 * ms:+.3f} ms at p50 (pairs {pairs * ms:+.3f} ms)  "
            f"(target < {target})"
        )

    for portal in portals:
        adds(f"{LABELS[portal]} adds", via(portal), DIRECT, "1 ms")
    for portal in portals:
        adds(f"the decision of {LABELS[portal]} adds", decision(portal), PLAIN_NGINX, "0.3 ms")
    if OTHER in portals:
        for what, path in (("via", via), ("the decision of", decision)):
            _, pairs = added(times, path(THIS), path(OTHER))
            print(
                f"   {what} this portal - {what} the --compare-with one, median of pairs: "
                f"{pairs * ms:+.3f} ms"
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


def big_files(
    direct: str, portals: dict[str, PortalProcess], token: str, size: int, rounds: int
) -> None:
    data = os.urandom(size)
    urls = {"direct": direct, **{name: portal.url for name, portal in portals.items()}}
    rates: dict[str, dict[str, list[float]]] = {
        kind: {where: [] for where in urls} for kind in ("up", "down")
    }
    growth = dict.fromkeys(portals, 0)
    # The portal's CPU-seconds per transfer: steadier than throughput on a busy machine.
    cpu: dict[str, dict[str, list[float]]] = {k: {name: [] for name in portals} for k in rates}

    def cpu_now(where: str) -> float:
        return cpu_seconds(portals[where].pid) if where in portals else 0.0

    for url in urls.values():  # warm-up: the first upload of a process is slower
        upload(url, token, data[: size // 10])
    for i in range(rounds):
        for where in round_order(list(urls), i):
            portal = portals.get(where)
            peak = PeakMemory(portal.pid) if portal is not None else None
            before = cpu_now(where)
            seconds, mxc = upload(urls[where], token, data)
            rates["up"][where].append(size / seconds / 1e6)
            between = cpu_now(where)
            seconds, got = download(urls[where], token, mxc)
            assert got == size
            rates["down"][where].append(size / seconds / 1e6)
            if peak is not None:
                growth[where] = max(growth[where], peak.stop())
                cpu["up"][where].append(between - before)
                cpu["down"][where].append(cpu_now(where) - between)
    mb = size / 1024 / 1024
    print(f"\n2. {mb:.0f} MB upload then download, {rounds} rounds (each its own order), medians:")
    for kind, by_path in rates.items():
        d = median(by_path["direct"])
        print(f"   {kind:4s} Synapse directly {d:7.1f} MB/s", end="")
        for name in portals:
            p = median(by_path[name])
            print(f"   {via(name)} {p:7.1f} MB/s ({p / d:6.1%})", end="")
        print()
    if OTHER in portals:
        for kind, by_path in rates.items():
            pairs = zip(by_path[THIS], by_path[OTHER], strict=True)
            ratio = median([mine / theirs for mine, theirs in pairs])
            print(f"   {kind:4s} this portal / the --compare-with one, per round: {ratio:.3f}")
    for name, grown in growth.items():
        print(
            f"   {LABELS[name]}: CPU per transfer (mean), up {fmean(cpu['up'][name]) * MS:.0f} ms, "
            f"down {fmean(cpu['down'][name]) * MS:.0f} ms; peak memory growth during a round: "
            f"{grown / 1e6:.1f} MB"
        )


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


def idle_polls(portal: PortalProcess, label: str, token: str, since: str, count: int) -> None:
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
    print(f"\n3. {count} idle /sync long-polls held through {label} at once:")
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
    parser.add_argument("--polls", type=int, default=1000, help="0: skip the long-polls")
    add_compare_with(parser)
    args = parser.parse_args()
    hs = SynapseProcess("bench.localhost", extra_pythonpath=[str(HERE.parent)])
    hs.config["max_upload_size"] = "200M"
    hs.config["rc_message"] = {"per_second": 10000, "burst_count": 10000}
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    config = {
        "public_baseurl": "https://matrix.example.com",
        "mode": "proxy",
        "client_api": "proxy",
        "homeservers": {"hs": {"base_url": hs.base_url}},
        "default_homeserver": "hs",
        "connections": {"max": args.polls + 100},
    }
    portals = portal_versions(config, workdir, args.compare_with)
    nginxes: dict[str, NginxProcess] = {}
    plain = None
    try:
        hs.start()
        hs.register_user("bench", PASSWORD)
        for portal in portals.values():
            portal.start()
        login = hs.password_login("bench", PASSWORD).json()
        token = login["access_token"]
        for name, portal in portals.items():
            nginxes[name] = NginxProcess(portal.port).start()
        plain, plain_url, _ = start_plain_nginx(hs.port)
        small_gets(
            {
                DIRECT: hs.base_url,
                **{via(name): portal.url for name, portal in portals.items()},
                PLAIN_NGINX: plain_url,
                **{decision(name): nginx.url for name, nginx in nginxes.items()},
            },
            list(portals),
            token,
            args.requests,
        )
        big_files(hs.base_url, portals, token, args.big_mb * 1024 * 1024, args.rounds)
        conn = connection(hs.base_url)
        conn.request("GET", "/_matrix/client/v3/sync", headers={"Authorization": f"Bearer {token}"})
        answer = conn.getresponse().read()
        since = re.search(rb'"next_batch":\s*"([^"]+)"', answer)
        assert since is not None
        if args.polls:
            for name, portal in portals.items():
                idle_polls(portal, LABELS[name], token, since.group(1).decode(), args.polls)
    finally:
        for nginx in nginxes.values():
            nginx.stop()
        if plain is not None:
            terminate(plain, grace=5)  # type: ignore[arg-type]
        for portal in portals.values():
            portal.stop()
        hs.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
