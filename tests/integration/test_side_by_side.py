"""A benchmark's ``--compare-with`` side runs the other checkout's package, even when the
benchmark runs from inside this checkout (``python -m`` puts the working directory ahead of
PYTHONPATH: both sides once ran this checkout's code)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from synapse_base_cs_url._dev.throwaway_portal import PACKAGE_PARENT, PortalProcess

pytestmark = pytest.mark.integration

#: A stand-in for another checkout's portal: answers /health, and says which file it is.
FAKE_MAIN = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from pathlib import Path

    import yaml

    config = yaml.safe_load(Path(sys.argv[sys.argv.index("--config") + 1]).read_text())
    Path(config["marker"]).write_text(__file__)

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

    HTTPServer((config["listen"]["host"], config["listen"]["port"]), Health).serve_forever()
    """
)


def test_the_other_side_imports_the_other_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other-checkout"
    (other / "synapse_base_cs_url").mkdir(parents=True)
    (other / "synapse_base_cs_url" / "__init__.py").write_text("")
    (other / "synapse_base_cs_url" / "__main__.py").write_text(FAKE_MAIN)
    marker = tmp_path / "loaded-from"
    monkeypatch.chdir(PACKAGE_PARENT)  # as a benchmark run from this checkout
    monkeypatch.delenv("PYTHONSAFEPATH", raising=False)
    workdir = tmp_path / "work"
    workdir.mkdir()
    portal = PortalProcess({"marker": str(marker)}, workdir, package_parent=other)
    try:
        portal.start()
        assert (
            Path(marker.read_text()).resolve()
            == (other / "synapse_base_cs_url" / "__main__.py").resolve()
        )
    finally:
        portal.stop()
    assert os.getcwd() == str(PACKAGE_PARENT)
