"""A minimal CAS server, enough for Synapse's CAS single sign-on to complete for real.

Synapse validates a service ticket with ``GET <server_url>/proxyValidate?ticket=...``; this
server accepts the tickets it was told about and names the user each one belongs to.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

SUCCESS = (
    '<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">'
    "<cas:authenticationSuccess><cas:user>{user}</cas:user></cas:authenticationSuccess>"
    "</cas:serviceResponse>"
)
FAILURE = (
    '<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">'
    '<cas:authenticationFailure code="INVALID_TICKET">unknown ticket</cas:authenticationFailure>'
    "</cas:serviceResponse>"
)


class FakeCasServer:
    def __init__(self) -> None:
        self.tickets: dict[str, str] = {}
        tickets = self.tickets

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                ticket = parse_qs(url.query).get("ticket", [""])[0]
                user = tickets.pop(ticket, None) if url.path.endswith("proxyValidate") else None
                body = (SUCCESS.format(user=escape(user)) if user else FAILURE).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/cas"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def issue_ticket(self, ticket: str, user: str) -> None:
        self.tickets[ticket] = user

    def __enter__(self) -> FakeCasServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
