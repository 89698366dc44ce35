"""``directory`` and ``homeservers.<name>.admin_token_file``: every mistake named by its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synapse_base_cs_url.portal.config.directory import Source
from synapse_base_cs_url.portal.config.portal_config import PortalConfig


def config(
    tmp_path: Path, *, tokens: tuple[str, ...] = ("hs1", "hs2"), **extra: Any
) -> PortalConfig:
    homeservers: dict[str, Any] = {}
    for name in ("hs1", "hs2"):
        settings: dict[str, Any] = {
            "base_url": f"https://{name}.example.com",
            "server_name": f"{name}.example.com",
        }
        if name in tokens:
            token = tmp_path / f"{name}.token"
            token.write_text(f"syt_secret_{name}\n")
            settings["admin_token_file"] = str(token)
        homeservers[name] = settings
    raw = {
        "public_baseurl": "https://matrix.example.com",
        "homeservers": homeservers,
        "default_homeserver": "hs1",
        **extra,
    }
    return PortalConfig.from_config(raw)


def test_admin_tokens_on_every_homeserver_switch_the_directory_on(tmp_path: Path) -> None:
    parsed = config(tmp_path)
    assert parsed.directory.sources == (Source.HOMESERVERS,)
    assert parsed.homeservers["hs1"].admin_token == "syt_secret_hs1"
    # Never shown.
    assert "syt_secret" not in repr(parsed.homeservers["hs1"])
    assert not config(tmp_path, tokens=()).directory.enabled


def test_a_token_on_some_homeservers_only_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^homeservers\.hs2\.admin_token_file: required by"):
        config(tmp_path, tokens=("hs1",))


def test_the_homeservers_source_needs_server_names(tmp_path: Path) -> None:
    token = tmp_path / "t"
    token.write_text("syt_x")
    raw = {
        "public_baseurl": "https://matrix.example.com",
        "homeservers": {
            "hs1": {"base_url": "https://hs1.example.com", "admin_token_file": str(token)}
        },
        "default_homeserver": "hs1",
    }
    with pytest.raises(ValueError, match=r"^homeservers\.hs1\.server_name: required"):
        PortalConfig.from_config(raw)


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "holds nothing"), ("two tokens\n", "more than that")],
)
def test_token_files_hold_one_token(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "hs1.token"
    path.write_text(content)
    raw = {
        "public_baseurl": "https://matrix.example.com",
        "homeservers": {
            "hs1": {"base_url": "https://hs1.example.com", "admin_token_file": str(path)}
        },
        "default_homeserver": "hs1",
    }
    with pytest.raises(ValueError, match=rf"^homeservers\.hs1\.admin_token_file: .*{message}"):
        PortalConfig.from_config(raw)


def test_an_unreadable_token_file(tmp_path: Path) -> None:
    raw = {
        "public_baseurl": "https://matrix.example.com",
        "homeservers": {
            "hs1": {
                "base_url": "https://hs1.example.com",
                "admin_token_file": str(tmp_path / "nope"),
            }
        },
        "default_homeserver": "hs1",
    }
    with pytest.raises(ValueError, match=r"^homeservers\.hs1\.admin_token_file: cannot read"):
        PortalConfig.from_config(raw)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"sources": ["ldap"]}, r"^directory\.sources\[0\]: unknown source 'ldap'"),
        ({"sources": ["http"]}, r"^directory\.url: required with the 'http' source"),
        ({"sources": ["homeservers"], "url": "https://d.example"}, r"^directory\.url: only used"),
        ({"sources": ["function"]}, r"^directory\.function: required"),
        (
            {"sources": ["function"], "function": "no.such.module:f"},
            r"^directory\.function: cannot import",
        ),
        ({"sources": ["homeservers", "homeservers"]}, r"listed twice"),
        ({"not_found_ttl": 0}, r"^directory\.not_found_ttl:"),
        ({"colour": "blue"}, r"^directory: unknown key"),
    ],
)
def test_directory_mistakes_name_the_key(
    tmp_path: Path, section: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        config(tmp_path, directory=section)


def test_an_http_directory_without_tokens(tmp_path: Path) -> None:
    parsed = config(
        tmp_path, tokens=(), directory={"sources": ["http"], "url": "https://dir.example.com/where"}
    )
    assert parsed.directory.sources == (Source.HTTP,)
    assert parsed.directory.url == "https://dir.example.com/where"
