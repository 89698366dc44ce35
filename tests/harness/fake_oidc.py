"""A minimal OpenID Connect provider on loopback, enough for Synapse's OIDC single sign-on to
complete for real (authorization code flow, ``client_secret_post``, the userinfo endpoint).

Synapse is configured without the ``openid`` scope, so it takes the user from the userinfo
endpoint and needs no signed ID token. The test says who logs in next with
:meth:`FakeOidcProvider.expect`; the authorization endpoint then approves at once.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

CLIENT_ID = "synapse"
CLIENT_SECRET = "oidc-secret-for-tests"


class FakeOidcProvider:
    def __init__(self) -> None:
        self.next_users: list[str] = []
        codes: dict[str, str] = {}
        tokens: dict[str, str] = {}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/authorize":
                    if not provider.next_users or query.get("client_id") != CLIENT_ID:
                        self._json(400, {"error": "invalid_request"})
                        return
                    code = secrets.token_urlsafe(8)
                    codes[code] = provider.next_users.pop(0)
                    target = (
                        query["redirect_uri"]
                        + "?"
                        + urlencode({"code": code, "state": query.get("state", "")})
                    )
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif url.path == "/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    user = tokens.get(token)
                    if user is None:
                        self._json(401, {"error": "invalid_token"})
                    else:
                        self._json(200, {"sub": f"sub-{user}", "preferred_username": user})
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                user = codes.pop(form.get("code", ""), None)
                if (
                    self.path != "/token"
                    or user is None
                    or form.get("client_id") != CLIENT_ID
                    or form.get("client_secret") != CLIENT_SECRET
                ):
                    self._json(400, {"error": "invalid_grant"})
                    return
                token = secrets.token_urlsafe(16)
                tokens[token] = user
                self._json(200, {"access_token": token, "token_type": "Bearer"})

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def expect(self, user: str) -> None:
        """The next authorization approves ``user``."""
        self.next_users.append(user)

    def synapse_config(self, idp_id: str) -> dict[str, Any]:
        """One entry of homeserver.yaml's ``oidc_providers`` for this provider."""
        return {
            "idp_id": idp_id,
            "idp_name": "Test OIDC",
            "discover": False,
            "issuer": self.url + "/",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "client_auth_method": "client_secret_post",
            "scopes": ["profile"],
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "userinfo_endpoint": self.url + "/userinfo",
            "user_profile_method": "userinfo_endpoint",
            "skip_verification": True,
            "user_mapping_provider": {
                "config": {
                    "subject_claim": "sub",
                    "localpart_template": "{{ user.preferred_username }}",
                    "display_name_template": "{{ user.preferred_username }}",
                }
            },
        }

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2)
