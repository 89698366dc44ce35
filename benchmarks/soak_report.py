"""The soak's verdict, and its picture (matplotlib)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from soak_deployment import Deployment
from soak_record import KINDS, LOGIN_KINDS, Record
from soak_sampling import Sampler


def verdict(
    record: Record, sampler: Sampler, minutes: float, d: Deployment
) -> tuple[bool, list[str]]:
    lines = []
    passed = True

    def judge(ok: bool, text: str) -> None:
        nonlocal passed
        passed = passed and ok
        lines.append(f"{'PASS' if ok else 'FAIL'}  {text}")

    outcomes = record.outcomes
    logins = [o for o in outcomes if o.kind in LOGIN_KINDS]
    judge(
        not record.lost and not record.wrong_home,
        f"no login lost: {sum(o.ok for o in logins)} logins succeeded, "
        f"{len(record.lost)} never did, {len(record.wrong_home)} at the wrong homeserver"
        + "".join(f"\n      {x}" for x in (record.lost + record.wrong_home)[:10]),
    )
    five_hundreds = [o for o in outcomes if o.status == 500]
    tracebacks = sum(p.logs().count("Traceback") for p in d.replicas.values())
    judge(
        not five_hundreds and not tracebacks,
        f"no 500: {len(five_hundreds)} answers 500, {tracebacks} tracebacks in the portals' logs",
    )
    failed = [o for o in outcomes if not o.ok and o.kind != "vanish"]
    unexcused = [o for o in failed if not record.excused(o)]
    retriable = [o for o in failed if o.status == 503]
    judge(
        not unexcused,
        f"every error in a window that excuses it: {len(failed)} errors, "
        f"{len(unexcused)} outside one"
        + "".join(
            f"\n      {o.kind} ({o.home}) {o.status} @{o.at - sampler.started:.0f}s: {o.why[:80]}"
            for o in unexcused[:10]
        ),
    )
    judge(
        all(o.retry_after for o in retriable),
        f"every 503 carries Retry-After: "
        f"{sum(o.retry_after for o in retriable)} of {len(retriable)}",
    )
    for fault in record.faults:
        grown = {
            label: (fault.fds_before[label], after)
            for label, after in fault.fds_after.items()
            if label in fault.fds_before
            and not label.endswith(fault.target.removeprefix("portal-"))
            and after > fault.fds_before[label] * 1.25 + 10
        }
        judge(
            not grown,
            f"file descriptors back to their level after {fault.target} {fault.name}"
            + (f": grown {grown}" if grown else ""),
        )
    warm = minutes * 60 * 0.2
    for label in [lbl for lbl in sampler.samples[-1]["processes"] if lbl.startswith("portal")]:
        slope = rss_growth_per_hour(sampler.samples, label, warm)
        if slope is None:
            lines.append(f"      {label}: too few samples to fit its RSS growth")
            continue
        text = f"{label} RSS growth after warm-up: {slope:+.1f} MB/hour (limit 20)"
        if minutes >= 30:
            judge(slope < 20, text)
        else:
            lines.append(f"info  {text} (not judged in a run under 30 minutes)")
    for label in [lbl for lbl in sampler.samples[-1]["processes"] if not lbl.startswith("portal")]:
        slope = rss_growth_per_hour(sampler.samples, label, warm)
        if slope is not None:
            lines.append(f"info  {label} RSS growth after warm-up: {slope:+.1f} MB/hour")
    return passed, lines


def rss_growth_per_hour(samples: list[dict[str, Any]], label: str, warm: float) -> float | None:
    """Least-squares slope of RSS over time, over the samples of the process's last pid."""
    last_pid = samples[-1]["processes"].get(label, {}).get("pid")
    points = [
        (s["t"], s["processes"][label]["rss_mb"])
        for s in samples
        if s["t"] >= warm and s["processes"].get(label, {}).get("pid") == last_pid
    ]
    if len(points) < 3:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_r = sum(r for _, r in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    slope = sum((t - mean_t) * (r - mean_r) for t, r in points) / var
    return slope * 3600


def draw(out: Path, sampler: Sampler, record: Record) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib: no picture (pip install matplotlib)", file=sys.stderr)
        return None
    minutes = [s["t"] / 60 for s in sampler.samples]
    fig, axes = plt.subplots(4, 1, figsize=(12, 14), sharex=True)
    latency, errors, memory, fds = axes
    for kind in KINDS:
        p99 = [s["kinds"].get(kind, {}).get("p99_ms") for s in sampler.samples]
        if any(v is not None for v in p99):
            latency.plot(minutes, [v if v is not None else float("nan") for v in p99], label=kind)
    latency.set_yscale("log")
    latency.set_ylabel("p99 (ms)")
    latency.legend(fontsize=7, ncol=4)
    for kind in KINDS:
        counts = [sum(s["kinds"].get(kind, {}).get("errors", {}).values()) for s in sampler.samples]
        if any(counts):
            errors.plot(minutes, counts, label=kind)
    errors.set_ylabel("errors per sample")
    errors.legend(fontsize=7, ncol=4)
    labels = sorted({label for s in sampler.samples for label in s["processes"]})
    for label in labels:
        for axis, key in ((memory, "rss_mb"), (fds, "fds")):
            values = [s["processes"].get(label, {}).get(key, float("nan")) for s in sampler.samples]
            axis.plot(minutes, values, label=label)
    memory.set_ylabel("RSS (MB)")
    fds.set_ylabel("open file descriptors")
    fds.set_xlabel("minutes")
    memory.legend(fontsize=7, ncol=4)
    fds.legend(fontsize=7, ncol=4)
    for fault in record.faults:
        start = (fault.start - sampler.started) / 60
        end = max((fault.end - sampler.started) / 60, start + 0.05)
        for axis in axes:
            axis.axvspan(start, end, color="red", alpha=0.12)
        latency.annotate(
            f"{fault.target} {fault.name}", (start, 1), xycoords=("data", "axes fraction"),
            fontsize=7, rotation=90, va="top",
        )  # fmt: skip
    fig.tight_layout()
    path = out / "soak.png"
    fig.savefig(path, dpi=80)
    return path
