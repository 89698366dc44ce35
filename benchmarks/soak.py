"""An hour of mixed traffic while homeservers, Redis and portal replicas fail: does anything
get lost, and does anything leak?

    python benchmarks/soak.py [--minutes 60] [--out DIR] [--sample SECONDS]

The deployment: three real Synapses with the module (each answers the portal's directory
and asks the portal before it creates an account), two portal replicas sharing a real Redis,
and a real nginx in front of them (``docs/nginx-gateway.conf``, its ``upstream`` holding
both replicas; the modules reach the portal through an internal nginx door that balances the
same replicas). The directory and the gateway are on; ``mode: auto`` redirects most clients
and proxies those that do not follow a 307 (``Dart/``).

The traffic, steady, every client through nginx: logins by localpart and by e-mail
(redirected, then the client follows to its homeserver) and by full Matrix ID and by
localpart in proxy mode; registrations (new names, placed by a hash pool, then logging in
like everybody else); sessions staying at the portal's address (whoami, a message sent,
``/sync`` held open, media up and down); password-reset requests; clients that vanish in the
middle of a request.

The faults, on a schedule scaled to the run: a homeserver stopped and started, one hung
(``SIGSTOP``) and resumed, Redis restarted, one replica killed (``SIGKILL``) and started,
both replicas reloaded with a changed config (``SIGHUP``).

Every ``--sample`` seconds: each process's RSS and open file descriptors, p50/p99 per kind of
request and errors by kind. At the end, a verdict:

- no login lost: each login succeeded, at once or on retry after a retriable error
  (``503`` with ``Retry-After``, a ``502``/``504``, a timeout) while its own homeserver was
  down, or a registration while any homeserver or the shared state was (a new name must be
  checked against every homeserver and reserved), or a password reset while the shared
  state was (its last step may reach the other replica);
- no ``500``, and no error outside the windows that excuse it;
- every process's file descriptors back to their level after each fault;
- the portal replicas' RSS growth per hour (after warm-up) under 20 MB.

It writes ``soak.json`` (every sample) and ``soak.png`` (the figures over time, faults
shaded; needs matplotlib) to ``--out``, and exits 1 if the verdict fails.

Its parts, beside this file: ``soak_record.py`` (the kinds of request, outcomes, faults, the
windows that excuse an error), ``soak_deployment.py``, ``soak_clients.py``,
``soak_faults.py``, ``soak_sampling.py`` and ``soak_report.py`` (the verdict, the picture).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from portal_loadgen import percentile  # noqa: E402
from soak_clients import Clients  # noqa: E402
from soak_deployment import Deployment, build  # noqa: E402
from soak_faults import Faults  # noqa: E402
from soak_record import KINDS, LOGIN_KINDS, NAMES, Record  # noqa: E402
from soak_report import draw, verdict  # noqa: E402
from soak_sampling import Sampler  # noqa: E402


def soak(d: Deployment, minutes: float, every: float) -> tuple[Record, Sampler]:
    """The traffic for ``minutes``, the faults on their schedule, sampled every ``every`` s."""
    record = Record()
    stop = threading.Event()
    sampler = Sampler(d, record, every)
    faults = Faults(d, record, sampler)
    clients = Clients(d, record, stop)
    workers: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
        *[(clients.login_worker, (LOGIN_KINDS, 0.2))] * 4,
        (clients.register_worker, (2.0,)),
        (clients.reset_worker, (3.0,)),
        (clients.vanish_worker, (1.0,)),
        *[(clients.session_worker, (*d.users[i], 0.5)) for i in range(len(NAMES) * 2)],
    ]
    threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in workers]
    threads.append(threading.Thread(target=sampler.run, args=(stop,), daemon=True))
    try:
        for thread in threads:
            thread.start()
        settle = max(8.0, every)
        for at, fault in faults.schedule(minutes):
            if stop.wait(max(0.0, at - sampler.elapsed())):
                break
            fault(stop)
            stop.wait(settle)
            record.faults[-1].fds_after = sampler.fds()
        stop.wait(max(0.0, minutes * 60 - sampler.elapsed()))
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    sampler.sample()
    return record, sampler


def save(
    out: Path, minutes: float, record: Record, sampler: Sampler, verdict: dict[str, Any]
) -> None:
    faults = [
        {
            "name": f.name,
            "target": f.target,
            "start": round(f.start - sampler.started, 1),
            "end": round(f.end - sampler.started, 1),
            "fds_before": f.fds_before,
            "fds_after": f.fds_after,
        }
        for f in record.faults
    ]
    failed = [
        {
            "at": round(o.at - sampler.started, 1),
            "kind": o.kind,
            "home": o.home,
            "status": o.status,
            "retry_after": o.retry_after,
            "excused": record.excused(o),
            "why": o.why[:200],
        }
        for o in record.outcomes
        if not o.ok and o.kind != "vanish"
    ]
    figures = {
        "minutes": minutes,
        "samples": sampler.samples,
        "faults": faults,
        "failed": failed[:2000],
        **verdict,
    }
    (out / "soak.json").write_text(json.dumps(figures, indent=1))


def summary(minutes: float, record: Record) -> None:
    totals: dict[str, int] = defaultdict(int)
    for o in record.outcomes:
        totals[o.kind] += 1
    print(f"\n{minutes:g} minutes; requests by kind: {dict(totals)}")
    for kind in KINDS:
        seconds = [o.seconds for o in record.outcomes if o.kind == kind and o.ok]
        if seconds and kind != "vanish":
            print(
                f"  {kind:22} p50 {percentile(seconds, 50) * 1000:8.1f} ms"
                f"  p99 {percentile(seconds, 99) * 1000:8.1f} ms"
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--sample", type=float, default=None, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--users", type=int, default=8, help="accounts per homeserver")
    args = parser.parse_args()
    every = args.sample or (60.0 if args.minutes >= 20 else 10.0)
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-out-"))
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    print(f"setting up in {workdir} ...", flush=True)
    with ExitStack() as cleanup:
        d = build(workdir, args.users, cleanup)
        print("running", flush=True)
        record, sampler = soak(d, args.minutes, every)
        passed, lines = verdict(record, sampler, args.minutes, d)
    save(out, args.minutes, record, sampler, {"verdict": lines, "passed": passed})
    picture = draw(out, sampler, record)
    summary(args.minutes, record)
    print("\n".join(lines))
    where = ", ".join(str(x) for x in (out / "soak.json", picture) if x)
    print(f"VERDICT: {'PASS' if passed else 'FAIL'}  (figures: {where})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
