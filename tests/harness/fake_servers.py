"""Servers that misbehave on purpose: a homeserver that hangs, one that never accepts."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from typing import ClassVar


class HangingServer:
    """Accepts TCP connections and never answers: a homeserver that hangs."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._held:
            conn.close()
        self._sock.close()


class UnacceptingServer:
    """A listening socket whose accept queue is full, so new connections never complete:
    a homeserver that cannot be connected to in time."""

    def __init__(self, fill: int = 4) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(0)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._fillers: list[socket.socket] = []
        for _ in range(fill):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):  # completes in the background
                filler.connect(("127.0.0.1", self.port))
            self._fillers.append(filler)

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._sock.close()


class StaticMatrixServer:
    """Answers what a client asks a Matrix server before logging in (``/versions``, login
    flows, ``.well-known``, CORS preflight), over HTTP or HTTPS with a given certificate, and
    with or without CORS headers: the front of a deployment, for ``check``."""

    ANSWERS: ClassVar[dict[str, object]] = {
        "/_matrix/client/versions": {"versions": ["v1.1", "v1.11"]},
        "/_matrix/client/v3/login": {"flows": [{"type": "m.login.password"}]},
        "/.well-known/matrix/client": {"m.homeserver": {"base_url": "https://example.invalid"}},
    }
    CORS = (
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS"),
        ("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization, Date"),
    )

    def __init__(
        self,
        *,
        cors: bool = True,
        cert: tuple[str, str] | None = None,
        more: dict[str, object] | None = None,
        posts: dict[str, tuple[int, object]] | None = None,
    ) -> None:
        """``more``: further ``GET`` answers by path; ``posts``: ``POST`` answers by path
        (status, body)."""
        import json
        import ssl
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        server_cors = self.CORS if cors else ()
        answers = {**self.ANSWERS, **(more or {})}
        post_answers = posts or {}

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: object | None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in server_cors:
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                answer = answers.get(self.path)
                if answer is None:
                    self._send(401, {"errcode": "M_MISSING_TOKEN", "error": "Missing token"})
                else:
                    self._send(200, answer)

            def do_OPTIONS(self) -> None:
                self._send(204, None)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, body = post_answers.get(self.path, (404, {"errcode": "M_UNRECOGNIZED"}))
                self._send(status, body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*cert)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.port: int = self._server.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2)


class SlowHomeserver:
    """Answers ``POST /login`` only after ``delay`` seconds (a successful login of
    ``@slow:slow.test``): logins in flight while the portal shuts down or reloads. Any
    ``GET`` is answered ``{}`` after the same delay (a long poll, or a slow homeserver)."""

    def __init__(self, delay: float) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received = 0
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    server.received += 1
                    number = server.received
                time.sleep(delay)
                body = json.dumps(
                    {
                        "user_id": "@slow:slow.test",
                        "access_token": f"syt_slow_{number}",
                        "device_id": f"SLOW{number}",
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class SocketServer:
    """A raw TCP server on loopback: each connection handled by ``handle`` in a thread of its
    own (for homeservers that misbehave below HTTP)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._held.append(conn)
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._sock.close()
        for conn in self._held:
            conn.close()


class DrippingServer(SocketServer):
    """Answers every request with a 200 whose body (``Content-Length`` 1 MB) starts, then
    stops: a homeserver in the middle of streaming an answer."""

    def handle(self, conn: socket.socket) -> None:
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: 1048576\r\n\r\n" + b"x" * 1024
            )
        except OSError:
            return


class UploadSink(SocketServer):
    """A homeserver that reads request bodies slowly and notes, per connection, whether the
    portal closed it before the whole body (``Content-Length``, or a chunked body's last
    chunk) had arrived."""

    def __init__(self) -> None:
        self.closed_early = threading.Event()
        self.received = 0
        self.heads: list[bytes] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                try:
                    data = conn.recv(4096)
                except OSError:  # reset: the portal gave up on the request
                    data = b""
                if not data:
                    self.closed_early.set()
                    return
                head += data
            self.heads.append(head.split(b"\r\n\r\n", 1)[0])
            match = re.search(rb"(?i)content-length:\s*(\d+)", head)
            chunked = re.search(rb"(?i)transfer-encoding:\s*chunked", head) is not None
            wanted = int(match.group(1)) if match else 0
            body = head.split(b"\r\n\r\n", 1)[1]
            got = len(body)
            tail = body[-5:]
            while (tail != b"0\r\n\r\n") if chunked else (got < wanted):
                time.sleep(0.01)
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.closed_early.set()
                    return
                got += len(data)
                tail = (tail + data)[-5:]
                self.received = got
