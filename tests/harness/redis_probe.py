"""Runs the portal's Redis commands against a real Redis, in a process of its own (the
reactor runs once per process), and prints what each returned as JSON.

    python -m tests.harness.redis_probe REDIS_URL {native,pre-6.2}

``pre-6.2`` takes the path the portal takes on a Redis older than 6.2 (the ``EVAL`` script
instead of ``GETDEL``; ``GET`` then ``EXPIRE`` instead of ``GETEX``), which a test cannot
otherwise reach with the Redis it has.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from twisted.internet import defer, task

from synapse_base_cs_url.portal.config.state import parse_state
from synapse_base_cs_url.portal.state.redis import RedisState


async def probe(reactor: Any, url: str, path: str) -> dict[str, Any]:
    settings = parse_state({"backend": "redis", "url": url, "key_prefix": "probe:"})
    state = RedisState(settings, reactor)
    try:
        seen: dict[str, Any] = {"version": await state.check()}
        if path == "pre-6.2":
            state._has_getdel = False  # what check() decides for an older Redis
        seen["put_new"] = await state.put_new("t", "hs2", 60)
        seen["put_new again"] = await state.put_new("t", "hs1", 60)
        seen["take"] = await state.take("t")
        seen["take again"] = await state.take("t")
        await state.put("m", "hs1", 5)
        seen["get_extending"] = await state.get_extending("m", 600)
        seen["ttl"] = await state._run("TTL", "probe:m")
        seen["get_extending missing"] = await state.get_extending("none", 600)
        await state.delete("m")
        seen["after delete"] = await state.get_extending("m", 600)
        return seen
    finally:
        state.close()


def main() -> None:
    url, path = sys.argv[1], sys.argv[2]

    async def run(reactor: Any) -> None:
        print(json.dumps(await probe(reactor, url, path)))

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)))


if __name__ == "__main__":
    main()
