"""``check --config portal.yaml`` asks about each admin token where the portal itself uses
it (``proxy_url``), never at ``base_url``: the public address may be another host (a CDN, a
load balancer that logs headers), and a homeserver's admin token must not travel there.

In-process, against small local HTTP servers that record what they are sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from synapse_base_cs_url.cli import run_portal_command
from tests.harness.cli import run_tool
from tests.harness.fake_servers import StaticMatrixServer

TOKEN = "syt_cG9ydGFs_secretadmintoken_0000"
ADMIN = "@portal-directory:hs1.test"


class AdminApi:
    """Answers whoami and the admin users API as a homeserver would for an admin's token,
    and records the Authorization header of every request it gets."""

    def __init__(self, *, refuse: bool = False) -> None:
        """``refuse``: answer every token as an unknown one (401)."""
        self.seen: list[tuple[str, str | None]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, self.headers.get("Authorization")))
                if self.path == "/_matrix/client/v3/account/whoami":
                    body: object = {"user_id": ADMIN}
                else:
                    body = {"name": ADMIN, "admin": True}
                if refuse:
                    body = {"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token passed."}
                data = json.dumps(body).encode()
                self.send_response(401 if refuse else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2)


@pytest.fixture
def servers() -> Iterator[tuple[StaticMatrixServer, AdminApi, AdminApi]]:
    front, public, internal = StaticMatrixServer(), AdminApi(), AdminApi()
    yield front, public, internal
    for server in (front, public, internal):
        server.close()


def portal_yaml(tmp_path: Path, base_url: str, proxy_url: str) -> Path:
    token_file = tmp_path / "hs1.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    config = tmp_path / "portal.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "public_baseurl": "https://portal.example.com",
                "homeservers": {
                    "hs1": {
                        "base_url": base_url,
                        "proxy_url": proxy_url,
                        "server_name": "hs1.test",
                        "admin_token_file": str(token_file),
                    }
                },
                "default_homeserver": "hs1",
            }
        )
    )
    return config


@pytest.mark.parametrize("refuse", [False, True])
def test_portal_check_asks_each_homeserver_about_its_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], refuse: bool
) -> None:
    internal = AdminApi(refuse=refuse)
    try:
        config = portal_yaml(tmp_path, "https://hs1.example.com", internal.url)
        status = run_portal_command(str(config), check_only=True)
    finally:
        internal.close()
    err = capsys.readouterr().err
    assert {auth for _, auth in internal.seen} == {f"Bearer {TOKEN}"}
    assert TOKEN not in err
    if refuse:
        assert status == 1
        assert "✗ hs1 admin token: the token is refused (whoami answered 401)" in err
    else:
        assert status == 0
        assert f"✓ hs1 admin token: {ADMIN}, a server admin" in err
        assert f"{config}: OK" in err


def test_portal_check_offline_asks_nobody(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    internal = AdminApi(refuse=True)
    try:
        config = portal_yaml(tmp_path, "https://hs1.example.com", internal.url)
        assert run_portal_command(str(config), check_only=True, offline=True) == 0
    finally:
        internal.close()
    assert internal.seen == []
    assert f"{config}: OK" in capsys.readouterr().err


def test_the_admin_token_goes_to_proxy_url_only(
    servers: tuple[StaticMatrixServer, AdminApi, AdminApi], tmp_path: Path
) -> None:
    front, public, internal = servers
    config = portal_yaml(tmp_path, public.url, internal.url)
    ran = run_tool("check", front.url, "--config", str(config))
    assert f"✓ hs1 admin token: {ADMIN}, a server admin" in ran.out, ran.out + ran.err
    assert public.seen == []
    assert {auth for _, auth in internal.seen} == {f"Bearer {TOKEN}"}
    assert TOKEN not in ran.out + ran.err
