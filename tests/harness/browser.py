"""Headless Chromium, as a user's browser: Debian's ``chromium`` package (installed by
``.ci/install-services``; nothing is downloaded), driven from pytest by Playwright's sync API
with the system browser as its executable."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from tests.harness.services import required_binary, skip_or_fail

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for the duration (a skip, or a failure in CI, without it)."""
    executable = required_binary("chromium", "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("these tests need the playwright package: pip install -e '.[test]'")
        raise
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            yield browser
        finally:
            browser.close()


def new_context(browser: Browser) -> BrowserContext:
    """A fresh browser profile: no cookies."""
    return browser.new_context()


@contextmanager
def client_page() -> Iterator[str]:
    """A web client's page on loopback (any path answers ``200``), where single sign-on
    ends; yields its origin. (A real server: Chromium refuses a closed low port, and a
    browser's redirects are not answered by Playwright's request routing.)"""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!DOCTYPE html><title>client</title><p>the client</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(2)
