"""What no portal log may carry, looked for in every portal log a test run wrote: Synapse
tokens (access, refresh, login), an ``access_token`` or ``loginToken`` in a query string,
the tests' password, an e-mail address."""

from __future__ import annotations

import re
from pathlib import Path

from tests.harness.constants import PASSWORD

SECRET = re.compile(
    r"\bsy[tlr]_[A-Za-z0-9_]{8,}"
    r"|access_token=[^&\s<]"
    r"|loginToken=[^&\s<]"
    r"|client_secret=[^&\s<]"
    r"|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z]{2,}"
    rf"|{re.escape(PASSWORD)}"
)


def secrets_in_portal_logs(root: Path) -> list[str]:
    """``path: line`` for each line of a ``portal.log`` under ``root`` that carries one."""
    found = []
    for log in sorted(root.rglob("portal.log")):
        for line in log.read_text(errors="replace").splitlines():
            if SECRET.search(line):
                found.append(f"{log.relative_to(root)}: {line[:300]}")
    return found
