"""The check every integration run ends with (``tests/harness/log_secrets.py``) finds what it
looks for, and nothing else."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.constants import PASSWORD
from tests.harness.log_secrets import secrets_in_portal_logs


@pytest.fixture
def logs() -> Iterator[Path]:
    """A folder outside pytest's own temporary folder: the integration run's final check
    scans that one, and must not find these made-up secrets."""
    with tempfile.TemporaryDirectory(prefix="log-secrets-") as folder:
        yield Path(folder)


@pytest.mark.parametrize(
    "line",
    [
        "token syt_YWxpY2U_abcdefghijklmnopqrst_0abcde resolved",
        "GET /_matrix/client/v3/sync?access_token=abc",
        "sso return?loginToken=xyz",
        f"login with {PASSWORD}",
        "reset for alice@mail.example.com",
    ],
)
def test_a_secret_in_a_portal_log_is_found(logs: Path, line: str) -> None:
    (logs / "p").mkdir()
    (logs / "p" / "portal.log").write_text(f"ok line\n{line}\n")
    assert secrets_in_portal_logs(logs) == [f"p/portal.log: {line}"]


def test_the_portals_own_lines_are_not(logs: Path) -> None:
    (logs / "portal.log").write_text(
        "2026-12-04 19:00:00,000 INFO synapse_base_cs_url.portal: login route=hs2-users "
        "homeserver=hs2 status=307 user=@bob:hs2.test\n"
        "token 3f2a9c1b0d4e resolved: hs1\ndirectory email:9f8e7d6c5b4a: homeservers found\n"
        "GET /_matrix/client/v3/sync?<redacted>\n"
    )
    assert secrets_in_portal_logs(logs) == []
