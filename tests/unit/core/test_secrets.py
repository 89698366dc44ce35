"""Secret files: one line, never in an error, and a warning when others may read them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from synapse_base_cs_url.core.secrets import read_secret_file

KEY = "homeservers.hs1.admin_token_file"


def secret_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "hs1.token"
    path.write_text("syt_c2VjcmV0_token_value\n")
    path.chmod(mode)
    return path


def test_a_file_others_may_read_is_warned_about_naming_its_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    path = secret_file(tmp_path, 0o644)
    assert read_secret_file(str(path), KEY) == "syt_c2VjcmV0_token_value"
    assert f"{KEY}: {path} can be read by others than its owner (mode 644); chmod 600 it" in (
        caplog.text
    )
    assert "syt_c2VjcmV0" not in caplog.text


def test_a_file_only_its_owner_may_read_is_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    read_secret_file(str(secret_file(tmp_path, 0o600)), KEY)
    assert caplog.text == ""
