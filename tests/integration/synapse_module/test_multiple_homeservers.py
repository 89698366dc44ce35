"""Several homeservers in one process each get their own config; one without the module is
untouched; the class-level hook is installed exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from synapse_base_cs_url._dev.throwaway_synapse import SynapseProcess, terminate
from tests.harness.constants import PASSWORD, REPO_ROOT
from tests.harness.synapse import module_entry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def three_in_one_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[SynapseProcess]]:
    homeservers = [
        SynapseProcess(
            "a.test",
            modules=[module_entry(base_cs_url="https://a.example.com")],
            workdir=tmp_path_factory.mktemp("a"),
        ),
        SynapseProcess(
            "b.test",
            modules=[module_entry(base_cs_url="https://b.example.com", well_known=False)],
            workdir=tmp_path_factory.mktemp("b"),
        ),
        SynapseProcess("plain.test", workdir=tmp_path_factory.mktemp("plain")),
    ]
    configs = [str(hs.write_config()) for hs in homeservers]
    log = (homeservers[0].workdir / "multi.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.multi_homeserver", *configs],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(10)
            log.close()
            pytest.fail((homeservers[0].workdir / "multi.log").read_text()[-5000:])
        status = json.loads(line)
        assert status["ready"]
        for hs in homeservers:
            hs.status = status  # type: ignore[attr-defined]
            hs.register_user("alice", PASSWORD)
        yield homeservers
    finally:
        terminate(proc)
        log.close()


def test_hook_installed_once(three_in_one_process: list[SynapseProcess]) -> None:
    assert three_in_one_process[0].status["login_hook_wrappers"] == 1  # type: ignore[attr-defined]


def test_each_homeserver_gets_its_own_config(three_in_one_process: list[SynapseProcess]) -> None:
    a, b, plain = (hs.password_login("alice", PASSWORD) for hs in three_in_one_process)
    assert a.status == b.status == plain.status == 200
    assert a.json()["user_id"] == "@alice:a.test"
    assert a.json()["base_cs_url"] == "https://a.example.com"
    assert a.json()["well_known"] == {"m.homeserver": {"base_url": "https://a.example.com"}}
    assert b.json()["base_cs_url"] == "https://b.example.com"
    assert "well_known" not in b.json()
    assert "base_cs_url" not in plain.json()
    assert "well_known" not in plain.json()
