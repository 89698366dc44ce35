"""Check the built sdist and wheel: what they contain and what their metadata says.

    python .ci/check_dist.py DIST_DIR

Run by tox's ``package`` env after ``python -m build`` and ``twine check``.
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path


def main(dist: Path) -> int:
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    problems: list[str] = []
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"check_dist: expected one wheel and one sdist in {dist}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    for required in (
        "synapse_base_cs_url/__init__.py",
        "synapse_base_cs_url/py.typed",
        "synapse_base_cs_url/core/__init__.py",
        "synapse_base_cs_url/synapse_module/module.py",
        "synapse_base_cs_url/portal/web/site.py",
        "synapse_base_cs_url/_dev/demo.py",
        "synapse_base_cs_url/portal/sso/templates/sso_sign_in.html",
    ):
        if required not in names:
            problems.append(f"wheel lacks {required}")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append("wheel lacks the LICENSE file under .dist-info/licenses/")
    if any(n.startswith(("tests/", "benchmarks/")) for n in names):
        problems.append("wheel contains tests or benchmarks")
    if metadata.get("License-Expression") != "Apache-2.0":
        problems.append(f"License-Expression is {metadata.get('License-Expression')!r}")
    if any("License ::" in c for c in metadata.get_all("Classifier") or []):
        problems.append("a deprecated License classifier is present")
    for field in ("Home-page", "Project-URL"):
        for value in metadata.get_all(field) or []:
            if "example" in value or "invalid" in value:
                problems.append(f"{field} is a placeholder: {value}")
    if metadata.get("Requires-Python") != ">=3.10":
        problems.append(f"Requires-Python is {metadata.get('Requires-Python')!r}")
    with tarfile.open(sdists[0]) as sdist:
        members = {Path(m.name).name for m in sdist.getmembers()}
    for required in ("LICENSE", "README.md", "CHANGELOG.md", "setup.cfg", "pyproject.toml"):
        if required not in members:
            problems.append(f"sdist lacks {required}")
    for problem in problems:
        print(f"check_dist: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_dist: {wheels[0].name} and {sdists[0].name} OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
