"""The docs stand alone and agree with the files they show."""

from __future__ import annotations

import re

from tests.harness.constants import REPO_ROOT

DOCS = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "CHANGELOG.md",
    *sorted((REPO_ROOT / "docs").glob("*.md")),
]


def test_the_deployment_guide_shows_the_tested_nginx_config_as_it_is() -> None:
    # tests/integration/portal/test_gateway.py runs docs/nginx-gateway.conf with a real nginx;
    # the guide's copy must be that file, not an older one.
    conf = (REPO_ROOT / "docs" / "nginx-gateway.conf").read_text()
    guide = (REPO_ROOT / "docs" / "deployment.md").read_text()
    assert f"```nginx\n{conf}```" in guide


def test_relative_links_lead_to_files_in_the_repository() -> None:
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            path = (doc.parent / target).resolve()
            assert path.is_relative_to(REPO_ROOT.resolve()), f"{doc.name}: {target}"
            assert path.exists(), f"{doc.name}: {target} does not exist"
