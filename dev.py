#!/usr/bin/env python3
"""The project's two entry points on a fresh machine with only Python 3.10+.

    python3 dev.py demo    # the module on a throwaway Synapse, then two behind the portal
    python3 dev.py test    # lint, package, types, tests against the oldest and newest Synapse

Each creates what it needs under .venv-demo/ or .venv-tox/ (re-used on later runs).
Arguments after the command go to the demo, or to pytest (``python3 dev.py test -- -k token``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MIN_PYTHON = (3, 10)


def ensure_venv(path: Path, requirements: list[str]) -> Path:
    """Create ``path`` as a virtualenv with ``requirements`` installed; return its python."""
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    marker = path / ".installed"
    wanted = "\n".join(requirements)
    if not python.exists():
        print(f"dev.py: creating {path.name}/ ...", flush=True)
        venv.create(path, with_pip=True)
    if not marker.exists() or marker.read_text() != wanted:
        print(f"dev.py: installing {' '.join(requirements)} ...", flush=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *requirements,
            ],
            check=True,
        )
        marker.write_text(wanted)
    return python


def run(argv: list[str]) -> int:
    if sys.version_info < MIN_PYTHON:
        sys.exit(f"dev.py needs Python {'.'.join(map(str, MIN_PYTHON))}+")
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    command, rest = argv[0], [a for a in argv[1:] if a != "--"]
    if command == "demo":
        python = ensure_venv(ROOT / ".venv-demo", ["-e", f"{ROOT}[synapse]"])
        demo = [str(python), "-m", "synapse_base_cs_url", "demo"]
        if rest:
            return subprocess.call([*demo, *rest])
        # The module on one homeserver, then two homeservers behind the portal.
        return subprocess.call(demo) or subprocess.call([*demo, "--portal"])
    python = ensure_venv(ROOT / ".venv-tox", ["tox>=4"])
    tox = [str(python), "-m", "tox", "-c", str(ROOT / "tox.ini")]
    return subprocess.call([*tox, "run", "--", *rest] if rest else [*tox, "run"])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
