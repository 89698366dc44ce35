"""``pip install "synapse-base-cs-url[portal]"``: everything the portal needs, and no Synapse.

The wheel of this checkout is built and installed with its ``portal`` extra into a fresh
virtualenv (from PyPI, through pip's normal configuration). In that virtualenv Synapse must
not be importable and txredisapi must be; the portal's commands must run there, and a
portal started from it with ``state.backend: redis`` must serve a real throwaway Redis, be
ready and stop cleanly on ``SIGTERM``. Without txredisapi the portal's hint must name an
extra the wheel really provides.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import attr
import pytest
import yaml

from synapse_base_cs_url._dev.throwaway_synapse import free_port, terminate
from tests.harness.services import RedisServer, redis_server

# A virtualenv without Synapse: the same whichever Synapse the test environment has.
pytestmark = [pytest.mark.integration, pytest.mark.once]

#: The checkout this test file belongs to (tests/integration/test_install.py -> root).
ROOT = Path(__file__).resolve().parents[2]

#: Not copied into the build directory: VCS data, virtualenvs, caches and old build output.
NOT_BUILT = shutil.ignore_patterns(
    ".git", ".tox", ".venv*", "venv", "build", "dist", "*.egg-info", "__pycache__",
    ".*_cache", ".hypothesis", "node_modules",
)  # fmt: skip

#: Nothing this test builds may be found in the checkout (``PYTHONPATH``, a current
#: directory inside it) or in another virtualenv.
NOT_INHERITED = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")

#: The hint's ``pip install "synapse-base-cs-url[EXTRA]"``.
HINT = re.compile(r'pip install "synapse-base-cs-url\[(?P<extra>[\w-]+)\]"')


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def run(argv: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``argv`` with its stdout and stderr together (for failure messages)."""
    return subprocess.run(
        argv,
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def ran(done: subprocess.CompletedProcess[str], what: str) -> str:
    assert done.returncode == 0, (
        f"{what} exited {done.returncode}:\n$ {' '.join(done.args)}\n{done.stdout}"
    )
    return done.stdout


def setuptools_is_new_enough() -> bool:
    """What pyproject.toml's build-system asks for, here already (else pip isolates)."""
    try:
        major = int(metadata.version("setuptools").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return major >= 77


@attr.s(auto_attribs=True)
class PortalVenv:
    dir: Path
    workdir: Path
    wheel: Path
    install_log: str

    @property
    def python(self) -> str:
        return str(self.dir / "bin" / "python")

    @property
    def command(self) -> str:
        return str(self.dir / "bin" / "synapse-base-cs-url")

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run([self.command, *args], self.workdir, timeout)

    def python_says(self, code: str) -> subprocess.CompletedProcess[str]:
        return run([self.python, "-c", code], self.workdir, 60)


@pytest.fixture(scope="module")
def portal_venv(tmp_path_factory: pytest.TempPathFactory) -> PortalVenv:
    base = tmp_path_factory.mktemp("install")
    # A copy: building in the checkout would leave build/ and egg-info behind in it.
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=NOT_BUILT)
    wheels = base / "wheels"
    # Without a new enough setuptools here, pip builds in an isolated env from the index.
    isolation = ["--no-build-isolation"] if setuptools_is_new_enough() else []
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", str(wheels)]
    ran(run([*build, str(source)], base), "building the wheel")
    (wheel,) = wheels.glob("synapse_base_cs_url-*.whl")
    venv = base / "venv"
    ran(run([sys.executable, "-m", "venv", str(venv)], base, 120), "python -m venv")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", f"{wheel}[portal]"]
    install_log = ran(run(pip, base), 'pip install "<wheel>[portal]"')
    workdir = base / "work"
    workdir.mkdir()
    return PortalVenv(venv, workdir, wheel, install_log)


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = redis_server()
    try:
        yield server
    finally:
        server.cleanup()


def portal_yaml(redis_port: int, port: int) -> dict[str, Any]:
    """Homeservers nobody listens on: ``/ready`` asks only about draining and Redis."""
    return {
        "listen": {"host": "127.0.0.1", "port": port},
        "public_baseurl": "https://portal.example.com",
        "mode": "redirect",
        "homeservers": {
            "hs1": {"base_url": f"http://127.0.0.1:{free_port()}"},
            "hs2": {"base_url": f"http://127.0.0.1:{free_port()}"},
        },
        "routes": [{"match": {"localpart": "h2_.*"}, "homeserver": "hs2"}],
        "default_homeserver": "hs1",
        "state": {
            "backend": "redis",
            "url": f"redis://127.0.0.1:{redis_port}/0",
            "key_prefix": "install-test:",
            "command_timeout": 2,
        },
    }


def write_config(venv: PortalVenv, name: str, config: dict[str, Any]) -> Path:
    path = venv.workdir / name
    path.write_text(yaml.safe_dump(config))
    return path


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def test_the_portal_extra_brings_txredisapi_and_no_synapse(portal_venv: PortalVenv) -> None:
    log = portal_venv.install_log
    no_synapse = portal_venv.python_says("import synapse")
    assert no_synapse.returncode != 0, f"Synapse is importable:\n{no_synapse.stdout}\n{log}"
    assert "No module named 'synapse'" in no_synapse.stdout, no_synapse.stdout
    ran(portal_venv.python_says("import txredisapi"), f"import txredisapi\n{log}")
    installed = ran(
        portal_venv.python_says(
            "from importlib import metadata\n"
            "for name in ('synapse-base-cs-url', 'txredisapi', 'matrix-synapse'):\n"
            "    try:\n"
            "        print(name, metadata.version(name))\n"
            "    except metadata.PackageNotFoundError:\n"
            "        print(name, 'absent')\n"
        ),
        "reading the installed versions",
    )
    versions = dict(line.split() for line in installed.splitlines())
    assert versions["matrix-synapse"] == "absent", log
    major, minor = (int(p) for p in versions["txredisapi"].split(".")[:2])
    assert (1, 4) <= (major, minor) < (1, 6), log


def test_the_portal_commands_run_without_synapse(portal_venv: PortalVenv) -> None:
    config = write_config(portal_venv, "commands.yaml", portal_yaml(free_port(), free_port()))
    key = portal_venv.workdir / "signing.key"
    ran(portal_venv.cli("generate-key", str(key)), "generate-key")
    assert key.stat().st_mode & 0o777 == 0o600
    assert "OK" in ran(portal_venv.cli("portal", "--config", str(config), "--check"), "--check")
    explained = ran(portal_venv.cli("explain", "-c", str(config), "h2_bob"), "explain")
    assert "-> hs2" in explained, explained
    users = portal_venv.workdir / "users.txt"
    users.write_text("@alice:example.com\n@h2_bob:example.com\n")
    args = ("diff", "-c", str(config), "-c", str(config), "--users", str(users))
    assert "0 users move" in ran(portal_venv.cli(*args), "diff")


def test_a_portal_from_that_venv_serves_on_redis(
    portal_venv: PortalVenv, redis: RedisServer
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_config(portal_venv, "portal.yaml", portal_yaml(redis.port, port))
    log_path = portal_venv.workdir / "portal.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [portal_venv.command, "portal", "--config", str(config)],
            cwd=portal_venv.workdir,
            env=clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def logs() -> str:
        return log_path.read_text(errors="replace")

    try:
        deadline = time.monotonic() + 20
        ready: tuple[int, str] = (0, "")
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the portal exited {proc.returncode}:\n{logs()}"
            try:
                ready = get(url + "/ready")
            except OSError:
                ready = (0, "not listening")
            if ready[0] == 200:
                break
            time.sleep(0.1)
        assert ready[0] == 200, f"/ready: {ready}\n{logs()}"
        assert get(url + "/health")[0] == 200, logs()
        assert "state in Redis" in logs(), logs()
        # `check` from the same virtualenv: it runs (the homeservers are not there, so it
        # reports failures) without needing Synapse.
        checked = portal_venv.cli("check", url, "--json", "--timeout", "5")
        assert checked.returncode in (0, 1), checked.stdout
        assert "Traceback" not in checked.stdout, checked.stdout
        assert isinstance(json.loads(checked.stdout), dict), checked.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, logs()
        assert "portal stopped" in logs(), logs()
    finally:
        terminate(proc, grace=10)


def test_without_txredisapi_the_hint_names_an_extra_that_exists(portal_venv: PortalVenv) -> None:
    config = write_config(portal_venv, "no-txredisapi.yaml", portal_yaml(free_port(), free_port()))
    # The portal as the command runs it, but with txredisapi unimportable (it stops before
    # any Redis is asked).
    without = (
        "import sys\n"
        "sys.modules['txredisapi'] = None\n"
        "from synapse_base_cs_url.cli import main\n"
        "main()\n"
    )
    done = run(
        [portal_venv.python, "-c", without, "portal", "--config", str(config)],
        portal_venv.workdir,
        60,
    )
    assert done.returncode == 1, done.stdout
    hint = HINT.search(done.stdout)
    assert hint is not None, done.stdout
    extras = ran(
        portal_venv.python_says(
            "from importlib import metadata\n"
            "print(*metadata.metadata('synapse-base-cs-url').get_all('Provides-Extra'))"
        ),
        "reading the wheel's extras",
    ).split()
    assert hint["extra"] in extras, (hint["extra"], extras)
    assert hint["extra"] == "portal"
