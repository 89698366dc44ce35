"""``synapse-base-cs-url demo --portal`` runs end to end and cleans up after itself."""

from __future__ import annotations

import io
import time

import pytest

from synapse_base_cs_url._dev.demo_portal import run_portal_demo

pytestmark = pytest.mark.integration


def test_portal_demo() -> None:
    out = io.StringIO()
    started = time.monotonic()
    assert run_portal_demo(out=out) == 0, out.getvalue()
    assert time.monotonic() - started < 30
    text = out.getvalue()
    assert "<- 307 Temporary Redirect" in text
    assert "login route=default homeserver=hs1 mode=redirect status=307" in text
    assert "login route=hs2-users homeserver=hs2 mode=proxy status=200" in text
    assert text.count('"base_cs_url"') == 2
    assert "THE POOL GROWS: nobody is lost" in text
    assert "With the account directory: 8 of 8 sent to hs1" in text
    assert "login route=directory homeserver=hs1 mode=redirect status=307" in text
    assert "everything is gone" in text
