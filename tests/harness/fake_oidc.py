"""A small OpenID Connect provider on loopback, built on authlib, enough for Synapse's OIDC
single sign-on to complete as it does against a real one: discovery
(``/.well-known/openid-configuration``), the authorization code flow with
``client_secret_post``, an RS256-signed ID token carrying Synapse's nonce (checked by Synapse
against the provider's JWKS), and a userinfo endpoint. The test says who logs in next with
:meth:`FakeOidcProvider.expect`; the authorization endpoint then approves at once.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import authlib.deprecate  # noqa: F401  (on import it sets its warnings to "always")

with warnings.catch_warnings():
    # authlib points at its successor, joserfc; Synapse itself still uses authlib.jose.
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, jwt

CLIENT_ID = "synapse"
CLIENT_SECRET = "oidc-secret-for-tests"
ID_TOKEN_LIFETIME = 300


class FakeOidcProvider:
    def __init__(self) -> None:
        self.next_users: list[str] = []
        self.id_tokens_issued = 0
        key = JsonWebKey.generate_key("RSA", 2048, is_private=True)
        public = key.as_dict(is_private=False)
        public.update({"kid": "test-key", "use": "sig", "alg": "RS256"})
        codes: dict[str, tuple[str, str | None]] = {}
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
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, provider.metadata())
                elif url.path == "/jwks":
                    self._json(200, {"keys": [public]})
                elif url.path == "/authorize":
                    if (
                        not provider.next_users
                        or query.get("client_id") != CLIENT_ID
                        or query.get("response_type") != "code"
                        or "openid" not in query.get("scope", "").split()
                    ):
                        self._json(400, {"error": "invalid_request"})
                        return
                    code = secrets.token_urlsafe(8)
                    codes[code] = (provider.next_users.pop(0), query.get("nonce"))
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
                granted = codes.pop(form.get("code", ""), None)
                if (
                    self.path != "/token"
                    or granted is None
                    or form.get("grant_type") != "authorization_code"
                    or form.get("client_id") != CLIENT_ID
                    or form.get("client_secret") != CLIENT_SECRET
                ):
                    self._json(400, {"error": "invalid_grant"})
                    return
                user, nonce = granted
                token = secrets.token_urlsafe(16)
                tokens[token] = user
                now = int(time.time())
                claims = {
                    "iss": provider.url,
                    "sub": f"sub-{user}",
                    "aud": CLIENT_ID,
                    "iat": now,
                    "exp": now + ID_TOKEN_LIFETIME,
                    "preferred_username": user,
                }
                if nonce is not None:
                    claims["nonce"] = nonce
                header = {"alg": "RS256", "kid": public["kid"]}
                id_token = jwt.encode(header, claims, key).decode("ascii")
                provider.id_tokens_issued += 1
                self._json(
                    200,
                    {
                        "access_token": token,
                        "token_type": "Bearer",
                        "expires_in": ID_TOKEN_LIFETIME,
                        "id_token": id_token,
                    },
                )

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def metadata(self) -> dict[str, Any]:
        """The discovery document."""
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "userinfo_endpoint": self.url + "/userinfo",
            "jwks_uri": self.url + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "grant_types_supported": ["authorization_code"],
        }

    def expect(self, user: str) -> None:
        """The next authorization approves ``user``."""
        self.next_users.append(user)

    def synapse_config(self, idp_id: str) -> dict[str, Any]:
        """One entry of homeserver.yaml's ``oidc_providers`` for this provider: discovery,
        the ``openid`` scope, and the user taken from the signed ID token.
        ``skip_verification`` only lets Synapse accept an issuer on plain http (loopback)."""
        return {
            "idp_id": idp_id,
            "idp_name": "Test OIDC",
            "discover": True,
            "issuer": self.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "client_auth_method": "client_secret_post",
            "scopes": ["openid", "profile"],
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
