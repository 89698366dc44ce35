"""``synapse-base-cs-url check``: a checklist of a live deployment, a portal or a homeserver.

Every check is an HTTP(S) request a client would make, with the standard library only. A
check never makes a failed login attempt: without a password it only reads where the portal
sends a user (the ``307``'s ``Location``, not followed, for a login body without a
password, asked only of a portal in redirect mode, which routes it before any homeserver
sees it; a portal says what it is at ``/_synapse_base_cs_url/portal``); with a
password (from the environment, never an argument) it logs in for real, checks the answer,
and logs the new device out again.
"""

from __future__ import annotations

import datetime
import http.client
import json
import socket
import ssl
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import attr

from synapse_base_cs_url.core import JsonDict
from synapse_base_cs_url.core.admin_token_answers import after_admin_api, after_whoami
from synapse_base_cs_url.core.context import localpart_of
from synapse_base_cs_url.core.login_types import PASSWORD_TYPE
from synapse_base_cs_url.core.placement_protocol import HOLDS_PATH
from synapse_base_cs_url.tools.explain import login_body

Status = Literal["ok", "fail", "warn"]
SYMBOLS = {"ok": "✓", "fail": "✗", "warn": "!"}
LOGIN = "/_matrix/client/v3/login"
#: The name a placement secret is checked with (whether it exists does not matter).
CHECKED_NAME = "synapse-base-cs-url-check"
VERSIONS = "/_matrix/client/versions"
WELL_KNOWN = "/.well-known/matrix/client"
WHOAMI = "/_matrix/client/v3/account/whoami"
PORTAL_INFO = "/_synapse_base_cs_url/portal"
LOGOUT = "/_matrix/client/v3/logout"
ADMIN_USERS = "/_synapse/admin/v2/users"
#: A web client's origin, for the CORS preflight a browser would send.
WEB_ORIGIN = "https://app.element.io"
#: Warn this many days before a certificate expires.
EXPIRY_WARNING_DAYS = 14


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Result:
    name: str
    status: Status
    detail: str
    hint: str = ""

    def line(self) -> str:
        hint = f"\n    hint: {self.hint}" if self.hint else ""
        return f"{SYMBOLS[self.status]} {self.name}: {self.detail}{hint}"

    def as_json(self) -> JsonDict:
        return attr.asdict(self)


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Unreachable(Exception):
    """No HTTP answer at all (connection refused, timeout, TLS failure)."""


class Client:
    """One request at a time, redirects never followed, TLS verified unless told not to."""

    def __init__(self, timeout: float, *, verify: bool = True, ca_file: str | None = None):
        self.timeout = timeout
        self.verify = verify
        self.ca_file = ca_file

    def context(self) -> ssl.SSLContext:
        if not self.verify:
            return ssl._create_unverified_context()
        return ssl.create_default_context(cafile=self.ca_file)

    def request(
        self,
        method: str,
        url: str,
        body: JsonDict | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        parts = urllib.parse.urlsplit(url)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self.timeout, context=self.context()
            )
        else:
            conn = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=self.timeout
            )
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"User-Agent": "synapse-base-cs-url-check", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path or "/", data, all_headers)
            response = conn.getresponse()
            answer = Answer(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        except (OSError, http.client.HTTPException) as e:
            raise Unreachable(_describe(e)) from None
        finally:
            conn.close()
        return answer


def certificate(
    url: str, timeout: float, ca_file: str | None, name: str = "TLS certificate"
) -> Result:
    """The TLS certificate of ``url``'s host: verified, and how long it has left."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.create_default_context(cafile=ca_file)
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert()
    except ssl.SSLCertVerificationError as e:
        return Result(
            name,
            "fail",
            f"{host}:{port}: {e.verify_message or e.reason}",
            "clients refuse this certificate: use one from a public CA (e.g. Let's Encrypt), "
            "valid for this host name, and renew it before it expires",
        )
    except (OSError, ssl.SSLError) as e:
        return Result(name, "fail", f"{host}:{port}: {_describe(e)}")
    not_after = ssl.cert_time_to_seconds(str((cert or {}).get("notAfter")))
    expires = datetime.datetime.fromtimestamp(not_after, datetime.timezone.utc)
    days = (expires - datetime.datetime.now(datetime.timezone.utc)).days
    detail = f"valid, expires {expires:%Y-%m-%d} ({days} days left)"
    if days < EXPIRY_WARNING_DAYS:
        return Result(name, "warn", detail, "renew it now")
    return Result(name, "ok", detail)


class Checker:
    """Runs the checklist for one URL."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ca_file: str | None = None,
        admin_tokens: Sequence[tuple[str, str, str]] = (),
        placement_secrets: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        """``admin_tokens``: (homeserver name, the URL the portal itself reaches it at,
        i.e. its ``proxy_url``, and its admin token) from the portal's config, each checked
        as and where the account directory will use it: never at the public ``base_url``,
        which may be another host (a CDN, a load balancer) that must not see the token.
        ``placement_secrets``: the same, with each homeserver's placement secret, checked
        against its module's directory lookup there."""
        self.admin_tokens = tuple(admin_tokens)
        self.placement_secrets = tuple(placement_secrets)
        self.url = url.rstrip("/")
        self.user = user
        self.password = password
        self.timeout = timeout
        self.ca_file = ca_file
        self.client = Client(timeout, ca_file=ca_file)
        parts = urllib.parse.urlsplit(self.url)
        self._hosts_checked = {(parts.hostname, parts.port or 443)}

    def run(self) -> list[Result]:
        return list(self._checks())

    def secret_checks(self) -> Iterator[Result]:
        """Each admin token and placement secret, asked where the portal uses it (also what
        ``portal --check`` runs)."""
        for name, base, token in self.admin_tokens:
            yield self._admin_token(name, base, token)
        for name, base, secret in self.placement_secrets:
            yield self._placement_secret(name, base, secret)

    def _checks(self) -> Iterator[Result]:
        if urllib.parse.urlsplit(self.url).scheme == "https":
            tls = certificate(self.url, self.timeout, self.ca_file)
            yield tls
            if tls.status == "fail":
                # Go on without verifying, so the rest of the list still says something.
                self.client = Client(self.timeout, verify=False)
        versions = self._versions("versions", self.url)
        yield versions
        if versions.status == "fail":
            return
        yield self._well_known()
        yield self._login_flows()
        yield self._cors("CORS", self.url)
        portal = self._portal()
        yield Result("kind", "ok", _describe_portal(portal) if portal else "a homeserver")
        yield from self.secret_checks()
        if self.user is None:
            return
        base = self.url
        if portal and portal.get("mode") != "redirect" and self.password is not None:
            pass  # the login below goes through the portal: its answer says where it landed
        elif portal:
            route = self._route(portal)
            yield route
            if route.status == "ok":
                base = route.detail.rsplit(" ", 1)[-1]
                yield from self._certificate("homeserver TLS certificate", base)
                yield self._versions("homeserver versions", base, routed=True)
                yield self._cors("homeserver CORS", base)
        elif self.password is None:
            yield Result(
                "route",
                "warn",
                f"a homeserver, not a portal: nothing routes {self.user} here",
                "to log in as that user, give --password-env",
            )
        if self.password is not None:
            yield from self._login(base)

    # -- the checks -------------------------------------------------------------------------

    def _certificate(self, name: str, url: str) -> Iterator[Result]:
        """The certificate of another host a client is sent to (each host checked once)."""
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname, parts.port or 443)
        if parts.scheme != "https" or host in self._hosts_checked:
            return
        self._hosts_checked.add(host)
        yield certificate(url, self.timeout, self.ca_file, name)

    def _versions(self, name: str, base: str, *, routed: bool = False) -> Result:
        try:
            answer = self.client.request("GET", base + VERSIONS)
        except Unreachable as e:
            hint = (
                "the portal sends this user to a base_url that does not answer: check "
                "homeservers.<name>.base_url in portal.yaml"
                if routed
                else "is the server running, and is this its client-server API URL?"
            )
            return Result(name, "fail", f"{base}: no answer ({e})", hint)
        versions = _json_field(answer, "versions")
        if answer.status != 200 or not isinstance(versions, list) or not versions:
            return Result(
                name,
                "fail",
                f"{base}{VERSIONS}: HTTP {answer.status}, not a Matrix /versions answer",
                "is this the client-server API URL (what clients put before /_matrix)?",
            )
        return Result(name, "ok", f"{base}: Matrix {versions[0]} to {versions[-1]}")

    def _well_known(self) -> Result:
        try:
            answer = self.client.request("GET", self.url + WELL_KNOWN)
        except Unreachable as e:
            return Result("/.well-known/matrix/client", "fail", f"no answer ({e})")
        if answer.status == 404:
            return Result(
                "/.well-known/matrix/client",
                "warn",
                "not served (404)",
                "clients given only the server name cannot find this URL: serve "
                '{"m.homeserver": {"base_url": "..."}} there',
            )
        homeserver = _json_field(answer, "m.homeserver")
        base_url = homeserver.get("base_url") if isinstance(homeserver, dict) else None
        if answer.status != 200 or not isinstance(base_url, str):
            return Result(
                "/.well-known/matrix/client",
                "fail",
                f"HTTP {answer.status}, no m.homeserver.base_url",
                'serve JSON: {"m.homeserver": {"base_url": "https://..."}}',
            )
        return Result("/.well-known/matrix/client", "ok", f"m.homeserver.base_url {base_url}")

    def _login_flows(self) -> Result:
        try:
            answer = self.client.request("GET", self.url + LOGIN)
        except Unreachable as e:
            return Result("login flows", "fail", f"no answer ({e})")
        flows = _json_field(answer, "flows")
        if answer.status != 200 or not isinstance(flows, list):
            return Result("login flows", "fail", f"GET {LOGIN}: HTTP {answer.status}")
        types = [f.get("type") for f in flows if isinstance(f, dict)]
        return Result("login flows", "ok", ", ".join(str(t) for t in types) or "none")

    def _cors(self, name: str, base: str) -> Result:
        headers = {
            "Origin": WEB_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        }
        try:
            answer = self.client.request("OPTIONS", base + LOGIN, headers=headers)
        except Unreachable as e:
            return Result(name, "fail", f"{base}: no answer ({e})")
        origin = answer.headers.get("access-control-allow-origin")
        methods = answer.headers.get("access-control-allow-methods", "").upper()
        allowed = answer.headers.get("access-control-allow-headers", "").lower()
        problems = []
        if origin not in ("*", WEB_ORIGIN):
            problems.append("no Access-Control-Allow-Origin")
        if "POST" not in methods:
            problems.append("POST not in Access-Control-Allow-Methods")
        if "content-type" not in allowed or "authorization" not in allowed:
            problems.append("Content-Type / Authorization not in Access-Control-Allow-Headers")
        if problems:
            return Result(
                name,
                "fail",
                f"{base}{LOGIN} preflight: {'; '.join(problems)}",
                "web clients (Element Web) cannot log in here: Synapse and the portal send "
                "these headers themselves, so a reverse proxy in front must pass them on "
                "(and answer OPTIONS)",
            )
        return Result(name, "ok", f"{base}: preflight allows POST from any origin")

    def _portal(self) -> dict[str, object] | None:
        """What the portal says it is (``None``: not a portal, a homeserver does not answer
        this path)."""
        try:
            answer = self.client.request("GET", self.url + PORTAL_INFO)
        except Unreachable:
            return None
        if answer.status != 200 or _json_field(answer, "portal") != "synapse-base-cs-url":
            return None
        info: dict[str, object] = answer.json()
        return info

    def _route(self, portal: dict[str, object]) -> Result:
        """Where the portal sends the user: the ``307``'s ``Location``, not followed. Asked
        only of a portal that redirects: one that proxies would pass the password-less body
        on, and the homeserver would count a failed login."""
        assert self.user is not None
        if portal.get("mode") != "redirect":
            return Result(
                "route",
                "warn",
                f"the portal proxies logins (mode: {portal.get('mode')}): not asked without a "
                "password, so that no homeserver counts a failed login",
                "where it goes can only be seen by logging in: give --password-env",
            )
        body = login_body(self.user, PASSWORD_TYPE)
        try:
            answer = self.client.request("POST", self.url + LOGIN, body)
        except Unreachable as e:
            return Result("route", "fail", f"no answer ({e})")
        location = answer.headers.get("location", "")
        if answer.status == 307 and location.endswith(LOGIN):
            base = location[: -len(LOGIN)]
            return Result("route", "ok", f"the portal sends {self.user} to {base}")
        if answer.status == 307:
            return Result("route", "fail", f"307 to {location!r}, not a /login URL")
        # The portal answered itself: its own words say why (a name held on two homeservers,
        # a homeserver that could not say, a limit).
        errcode, error = _json_field(answer, "errcode"), _json_field(answer, "error")
        return Result(
            "route",
            "fail",
            f"the portal answered HTTP {answer.status} {errcode or ''}: {error or '(no message)'}",
            "the portal's log has this login's line (route=, problem=)",
        )

    def _admin_token(self, name: str, base: str, token: str) -> Result:
        """What the directory's token for ``name`` may do there (the token is never shown)."""
        check = f"{name} admin token"
        auth = {"Authorization": f"Bearer {token}"}
        try:
            whoami = self.client.request("GET", base + WHOAMI, headers=auth)
            user_id = _json_field(whoami, "user_id") if whoami.status == 200 else None
            verdict = after_whoami(whoami.status, user_id)
            if isinstance(verdict, str):
                quoted = urllib.parse.quote(verdict, safe="")
                admin = self.client.request("GET", f"{base}{ADMIN_USERS}/{quoted}", headers=auth)
                verdict = after_admin_api(verdict, admin.status)
        except Unreachable as e:
            return Result(check, "warn", f"{name} did not answer: {e}")
        if verdict.ok is None:  # as the portal reads it: no answer, asked again later
            return Result(
                check,
                "warn",
                f"{name} did not say ({verdict.detail})",
                f"is proxy_url ({base}) the homeserver itself, passing /_synapse/admin/?",
            )
        if verdict.ok is False:
            hint = (
                "log the portal's admin user in again and write its new token to the file"
                if verdict.user_id is None
                else "the directory needs an admin's token: make the user an admin, or use another"
            )
            return Result(check, "fail", verdict.detail, hint)
        return Result(
            check,
            "ok",
            f"{verdict.user_id}, a server admin: may read (and change) every account on {name}; "
            "keep the token to the portal alone",
        )

    def _placement_secret(self, name: str, base: str, secret: str) -> Result:
        """Whether ``name``'s module answers the directory with the portal's secret for it
        (the same secret authenticates its asks; it is never shown)."""
        check = f"{name} placement secret"
        auth = {"Authorization": f"Bearer {secret}"}
        try:
            answer = self.client.request(
                "POST", base + HOLDS_PATH, {"localpart": CHECKED_NAME}, headers=auth
            )
        except Unreachable as e:
            return Result(check, "warn", f"{name} did not answer: {e}")
        if answer.status == 200 and isinstance(_json_field(answer, "holds"), bool):
            return Result(check, "ok", f"{name}'s module answers the directory with it")
        if answer.status in (401, 403):
            return Result(
                check,
                "fail",
                f"{name}'s module refused it (HTTP {answer.status})",
                "the module's placement.secret_file and the portal's "
                f"homeservers.{name}.placement_secret_file must hold the same secret",
            )
        return Result(
            check,
            "fail",
            f"no module lookup at {base} (HTTP {answer.status})",
            "the module needs a placement section, and proxy_url must pass /_synapse/client/",
        )

    def _login(self, base: str) -> Iterator[Result]:
        assert self.user is not None and self.password is not None
        body = {
            **login_body(self.user, PASSWORD_TYPE),
            "password": self.password,
            "initial_device_display_name": "synapse-base-cs-url check",
        }
        try:
            answer = self.client.request("POST", self.url + LOGIN, body)
            if answer.status == 307:  # what every client does: the same POST, once more
                answer = self.client.request("POST", answer.headers.get("location", ""), body)
        except Unreachable as e:
            yield Result("login", "fail", f"no answer ({e})")
            return
        token = _json_field(answer, "access_token")
        if answer.status != 200 or not isinstance(token, str):
            errcode = _json_field(answer, "errcode")
            hint = (
                "the homeserver's login rate limit (Synapse's rc_login): wait, or raise it "
                "for the address the logins come from (the portal's, when it proxies)"
                if answer.status == 429
                else ""
            )
            yield Result("login", "fail", f"HTTP {answer.status} {errcode or ''}".strip(), hint)
            return
        login = answer.json()
        yield Result("login", "ok", f"logged in as {login.get('user_id')}")
        base_cs_url = login.get("base_cs_url")
        well_known = (login.get("well_known") or {}).get("m.homeserver", {}).get("base_url")
        if not isinstance(base_cs_url, str):
            yield Result(
                "base_cs_url",
                "fail",
                f"the login response from {base} has no base_cs_url",
                "the module is not loaded on this homeserver: add "
                "synapse_base_cs_url.BaseCsUrlModule under modules: in its homeserver.yaml "
                "(on every worker serving /login) and restart it",
            )
        elif well_known != base_cs_url:
            yield Result(
                "base_cs_url",
                "fail",
                f"base_cs_url {base_cs_url} but well_known.m.homeserver.base_url {well_known}",
                "clients act on well_known: leave the module's well_known option on",
            )
        else:
            yield Result("base_cs_url", "ok", f"{base_cs_url}, the same as well_known")
        target = base_cs_url if isinstance(base_cs_url, str) else base
        yield from self._certificate("base_cs_url TLS certificate", target)
        yield self._versions("base URL answers", target, routed=True)
        yield from self._whoami_and_logout(target, token, str(login.get("user_id")))

    def _whoami_and_logout(self, base: str, token: str, user_id: str) -> Iterator[Result]:
        auth = {"Authorization": f"Bearer {token}"}
        try:
            me = self.client.request("GET", base + WHOAMI, headers=auth)
            who = _json_field(me, "user_id")
            wanted = self.user if (self.user or "").startswith("@") else None
            if me.status == 200 and who == user_id and (wanted is None or who == wanted):
                yield Result("whoami", "ok", f"{base} knows the new token as {who}")
            elif me.status == 200 and localpart_of(str(who)) is not None:
                yield Result("whoami", "fail", f"{base} says {who}, expected {wanted or user_id}")
            else:
                yield Result(
                    "whoami",
                    "fail",
                    f"{base} does not know the token (HTTP {me.status})",
                    "base_cs_url points at another homeserver than the one that logged the user in",
                )
        except Unreachable as e:
            yield Result("whoami", "fail", f"{base}: no answer ({e})")
        try:
            out = self.client.request("POST", base + LOGOUT, {}, headers=auth)
        except Unreachable as e:
            yield Result("logout", "fail", f"{base}: no answer ({e})")
            return
        if out.status == 200:
            yield Result("logout", "ok", "the check's device is logged out again")
        else:
            yield Result(
                "logout",
                "warn",
                f"HTTP {out.status}: the check's device may still exist",
                "remove it from the user's sessions",
            )


def _describe_portal(info: dict[str, object]) -> str:
    gateway = ", carrying the client-server API" if info.get("client_api") == "proxy" else ""
    return f"a login portal (mode: {info.get('mode')}{gateway})"


def _json_field(answer: Answer, field: str) -> Any:
    try:
        parsed = answer.json()
    except (ValueError, RecursionError):
        return None
    return parsed.get(field) if isinstance(parsed, dict) else None


def _describe(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
