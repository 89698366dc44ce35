"""The module's ``placement`` section: each mistake named by its key, the secret never shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synapse_base_cs_url.synapse_module.config import ModuleConfig
from synapse_base_cs_url.synapse_module.placement_config import Unreachable

SECRET = "0123456789abcdef0123456789abcdef"


def placement(tmp_path: Path, secret: str = SECRET, **overrides: Any) -> dict[str, Any]:
    path = tmp_path / "placement.secret"
    path.write_text(secret + "\n")
    return {"portal_url": "http://portal.internal:8080/", "secret_file": str(path), **overrides}


def test_a_full_section(tmp_path: Path) -> None:
    raw = placement(tmp_path, timeout=2, when_portal_unreachable="allow", follow_routes=True)
    settings = ModuleConfig.from_config({"placement": raw}).placement
    assert settings is not None
    assert settings.portal_url == "http://portal.internal:8080"
    assert settings.secret == SECRET and SECRET not in repr(settings)
    assert settings.timeout == 2.0
    assert settings.when_portal_unreachable is Unreachable.ALLOW
    assert settings.follow_routes is True


def test_defaults(tmp_path: Path) -> None:
    settings = ModuleConfig.from_config({"placement": placement(tmp_path)}).placement
    assert settings is not None
    assert (settings.timeout, settings.when_portal_unreachable) == (5.0, Unreachable.REFUSE)
    assert ModuleConfig.from_config({}).placement is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"portal_url": None}, "placement.portal_url: required"),
        ({"portal_url": "portal:8080"}, "placement.portal_url: "),
        ({"secret_file": None}, "placement.secret_file: required"),
        ({"secret_file": "/nonexistent/secret"}, "placement.secret_file: cannot read"),
        ({"timeout": 0}, "placement.timeout: "),
        ({"timeout": 600}, "placement.timeout: at most 60 seconds"),
        ({"when_portal_unreachable": "ignore"}, "placement.when_portal_unreachable: must be"),
        ({"portal": "x"}, "placement: unknown key 'portal'"),
        ({"follow_routes": "yes"}, "placement.follow_routes: must be true or false"),
    ],
)
def test_each_mistake_names_its_key(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    raw = {**placement(tmp_path), **change}
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        ModuleConfig.from_config({"placement": raw})


def test_a_short_secret_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^placement\.secret_file: the secret in .* is 6 ") as e:
        ModuleConfig.from_config({"placement": placement(tmp_path, secret="abc123")})
    assert "abc123" not in str(e.value)


def test_a_secret_must_be_ascii(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^placement\.secret_file: the secret in .* be ASCII"):
        ModuleConfig.from_config({"placement": placement(tmp_path, secret="é" * 20)})
