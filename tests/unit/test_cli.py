"""``synapse-base-cs-url portal --config ...``: config mistakes end startup with the key and
the problem, a non-zero exit and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
public_baseurl: https://matrix.example.com
homeservers:
  hs1: {base_url: https://hs1.example.com}
  hs2: {base_url: https://hs2.example.com, proxy_url: http://10.1.0.2:8008}
routes:
  - match: {user_id: "@.*:hs2\\\\.example\\\\.com"}
    homeserver: hs2
default_homeserver: hs1
"""


def run(tmp_path: Path, text: str, *extra: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "portal.yaml"
    config.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "synapse_base_cs_url", "portal", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )


def test_check_accepts_a_good_config(tmp_path: Path) -> None:
    result = run(tmp_path, GOOD, "--check")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("hs2: {base_url", "hs2: {base_url: ftp://x, bad"), "homeservers.hs2: unknown key 'bad'"),
        (("homeserver: hs2", "homeserver: hs3"), "routes[0].homeserver: unknown homeserver 'hs3'"),
        (("default_homeserver: hs1", "default_homeserver: nope"), "default_homeserver: unknown"),
        (("public_baseurl: https://matrix.example.com", "mode: fast"), "public_baseurl: required"),
        (("homeservers:", "homeservers: [\n"), "not valid YAML"),
    ],
)
def test_config_errors_name_the_key_without_a_traceback(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    result = run(tmp_path, GOOD.replace(*change, 1))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "synapse_base_cs_url", "portal", "-c", str(tmp_path / "no.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot read the config file" in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_key_writes_a_private_random_key_once(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"

    def generate(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "synapse_base_cs_url", "generate-key", str(path), *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert generate().returncode == 0
    first = path.read_bytes()
    assert len(first) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    refused = generate()
    assert refused.returncode == 2
    assert "exists. To rotate keys" in refused.stderr
    assert "--force replaces it" in refused.stderr
    assert path.read_bytes() == first
    assert generate("--force").returncode == 0
    assert path.read_bytes() != first
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_demo_without_synapse_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from synapse_base_cs_url import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "synapse" else real(name, *a)
    )
    with pytest.raises(SystemExit) as exited:
        cli.main(["demo"])
    assert 'pip install "synapse-base-cs-url[synapse]"' in str(exited.value.code)
