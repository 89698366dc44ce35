"""``synapse-base-cs-url demo``: the module on a real, throwaway Synapse, in a few seconds.

Starts Synapse (SQLite, loopback, temp dir) with the module enabled, registers a user, logs
in, prints the login response with ``base_cs_url`` and ``well_known`` highlighted, and
removes everything it created.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess, SynapseStartupError

DEMO_URL = "https://matrix-cs.example.com"
HIGHLIGHTED = ("base_cs_url", "well_known")


def highlight_json(body: dict[str, Any], out: TextIO) -> str:
    """Pretty JSON with the MSC1730 keys marked (in colour on a terminal)."""
    colour = out.isatty()
    lines = []
    for index, (key, value) in enumerate(body.items()):
        shown = value[:8] + "..." if key == "access_token" else value
        comma = "," if index < len(body) - 1 else ""
        text = f"  {json.dumps(key)}: {json.dumps(shown)}{comma}"
        if key in HIGHLIGHTED:
            text = f"\033[1;32m{text}\033[0m" if colour else f"{text}   <-- MSC1730"
        lines.append(text)
    return "{\n" + "\n".join(lines) + "\n}"


def run_demo(*, keep: bool = False, out: TextIO = sys.stdout) -> int:
    started = time.monotonic()
    password = secrets.token_urlsafe(12)
    module = {
        "module": "synapse_base_cs_url.BaseCsUrlModule",
        "config": {"base_cs_url": DEMO_URL, "well_known": True},
    }
    hs = SynapseProcess(
        "demo.localhost",
        modules=[module],
        extra_config={"public_baseurl": "https://demo.example.com/"},
        extra_pythonpath=[str(Path(__file__).resolve().parents[1])],
    )
    print(f"Starting a throwaway Synapse in {hs.workdir} ...", file=out, flush=True)
    try:
        hs.start()
        print(f"Synapse is up at {hs.base_url} with this in homeserver.yaml:", file=out)
        print(f"  modules:\n    - module: {module['module']}", file=out)
        print(f"      config: {json.dumps(module['config'])}", file=out)
        user_id = hs.register_user("demo", password)
        print(f"Registered {user_id}; logging in with POST /_matrix/client/v3/login ...", file=out)
        result = hs.password_login("demo", password)
        if result.status != 200:
            print(f"Login failed: {result!r}", file=out)
            return 1
        print(f"HTTP {result.status}", file=out)
        print(highlight_json(result.json(), out), file=out)
        print(
            f"\nClients now use {result.json()['base_cs_url']}/_matrix/client/... for this user\n"
            "(well_known.m.homeserver.base_url is what Element, matrix-rust-sdk & co act on).",
            file=out,
        )
    except SynapseStartupError as e:
        print(str(e), file=out)
        return 1
    finally:
        if keep:
            hs.stop()
            print(f"Kept {hs.workdir}", file=out)
        else:
            hs.cleanup()
    print(f"Done in {time.monotonic() - started:.1f}s; the throwaway Synapse is gone.", file=out)
    return 0
