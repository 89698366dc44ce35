"""Two versions of the portal side by side in one run, for the benchmarks' ``--compare-with
DIR``: this checkout's portal and the portal of another checkout (``DIR`` holds its
``synapse_base_cs_url``; its process runs with ``PYTHONPATH=DIR``), with the same config, so
that both see the machine at the same moments. Also what the benchmarks that interleave
share: the order of a round and the cost one path adds over another."""

from __future__ import annotations

import argparse
import http.client
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from portal_loadgen import median, percentile

from synapse_base_cs_url._dev.throwaway_portal import PACKAGE_PARENT, PortalProcess

T = TypeVar("T")

#: The keys of :func:`portal_versions`' answer, and how the reports name them.
THIS, OTHER = "this", "other"
LABELS = {THIS: "this portal", OTHER: "--compare-with portal"}


def add_compare_with(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compare-with",
        type=Path,
        metavar="DIR",
        help="another checkout's directory: its portal is run too, interleaved with this one",
    )


def portal_versions(
    config: dict[str, Any], workdir: Path, other: Path | None, **kwargs: Any
) -> dict[str, PortalProcess]:
    """This portal (``THIS``) and, with ``other``, that checkout's (``OTHER``), each in a
    work directory of its own under ``workdir`` (not started)."""
    versions = {THIS: PACKAGE_PARENT}
    if other is not None:
        versions[OTHER] = other.resolve()
    portals = {}
    for name, parent in versions.items():
        (workdir / name).mkdir(parents=True)
        portals[name] = PortalProcess(config, workdir / name, package_parent=parent, **kwargs)
    return portals


def round_order(names: Sequence[T], i: int) -> list[T]:
    """The order of round ``i``: ``names`` shuffled, differently each round (the same each
    run). No path always comes first, last, or right after the same other path: on two
    shared cores what ran just before changes a request's latency by a tenth of a
    millisecond (a fixed rotation once made one of two identical portals look slower)."""
    return random.Random(i).sample(list(names), len(names))


def added(times: dict[str, list[float]], over: str, base: str) -> tuple[float, float]:
    """What ``over`` adds to ``base`` in seconds: the difference of their p50s, and the
    median of the differences of pairs measured one right after the other."""
    p50 = percentile(times[over], 50) - percentile(times[base], 50)
    pairs = median([a - b for a, b in zip(times[over], times[base], strict=True)])
    return p50, pairs


def timed(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    expect: int = 200,
) -> float:
    """Seconds for one request on a kept-alive connection, the whole answer read; a
    ``RuntimeError`` unless it is answered ``expect``."""
    started = time.perf_counter()
    conn.request(method, path, body, headers or {})
    response = conn.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - started
    if response.status != expect:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
    return elapsed
