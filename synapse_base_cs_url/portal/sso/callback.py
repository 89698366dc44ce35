"""Single sign-on through the portal, with several homeservers behind it.

1. ``GET /_matrix/client/{r0,v3}/login/sso/redirect[/<idp>]?redirectUrl=X`` at the portal:
   the identity provider picks the homeserver (``sso.identity_providers``, else
   ``sso.default``), and the browser is sent (302) to that homeserver's same path with
   ``redirectUrl`` replaced by the portal's callback::

       <public_baseurl>/_synapse_base_cs_url/sso/return?hs=<name>&to=<X>&exp=<unix time>&sig=<HMAC>

2. The homeserver does the SSO dance and sends the browser to the callback with
   ``&loginToken=T`` appended. The portal checks the signature (an HMAC-SHA256 of ``hs``,
   ``exp`` and ``to`` under a random per-process key: nobody else can make the portal
   believe that ``hs`` issued a token, nor send a token to a ``to`` that was not the
   client's own ``redirectUrl``) and the expiry, records ``T -> hs`` (see ``sso_tokens``)
   and sends the browser on to ``X`` with ``loginToken=T`` appended (X's own query kept).
   If ``X`` does not start with one of ``sso.client_whitelist``, the portal asks the user
   first (an HTML page with a link), as Synapse does for clients outside its own
   ``sso.client_whitelist``: the homeservers skip their confirmation for the portal's
   callback, so the portal must not hand a token to any site that merely started a login.
3. ``POST /login`` with ``m.login.token``: routed to the recorded homeserver.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import urllib.parse
from collections.abc import Sequence

import attr

from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.config.sso import with_root_path

CALLBACK_PATH = b"/_synapse_base_cs_url/sso/return"
#: How long a callback URL is accepted after the SSO redirect that made it. Identity
#: providers' own login pages can take a while (password managers, 2FA); Synapse's OIDC
#: session cookie lasts an hour too.
CALLBACK_LIFETIME = 3600
#: Schemes a ``redirectUrl`` must not have: the confirmation page puts it in a link.
UNSAFE_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob"})


class CallbackSigner:
    """Signs and checks ``(hs, exp, to)``, and what else the portal's SSO pages hand a
    browser to bring back (:meth:`sign_parts`: the sign-in page's form, its cookie).

    ``key`` is ``sso.signing_key_file``'s content, shared by every portal process (random per
    process if not given, which only a single process can use); callbacks signed with one of
    ``previous`` (``sso.previous_signing_key_files``) are still accepted, so a key can be
    rotated without failing the SSO logins in progress.
    """

    def __init__(self, key: bytes | None = None, previous: Sequence[bytes] = ()) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._previous = tuple(previous)

    def sign(self, hs: str, exp: int, to: str) -> str:
        """A callback's signature (the format callbacks have always had: ``hs``, ``exp`` and
        ``to`` joined by NUL, so the callbacks of a login under way survive an upgrade)."""
        return self._sign(_callback_message(hs, exp, to))

    def valid(self, hs: str, exp: int, to: str, sig: str) -> bool:
        return self._valid(_callback_message(hs, exp, to), sig)

    def sign_parts(self, purpose: str, *parts: str) -> str:
        """The signature of what else the portal hands a browser to bring back (the sign-in
        page's state, its cookie): ``purpose`` first, every part length-prefixed, after a
        version mark no callback message can start with (a callback's first part is a
        homeserver name and its second a number, never a purpose), so no kind of signed
        thing can pass for another, whatever its parts contain."""
        return self._sign(_parts_message(purpose, parts))

    def valid_parts(self, sig: str, purpose: str, *parts: str) -> bool:
        return self._valid(_parts_message(purpose, parts), sig)

    def _sign(self, message: bytes) -> str:
        return _signature(self._key, message)

    def _valid(self, message: bytes, sig: str) -> bool:
        given = sig.encode()
        return any(
            hmac.compare_digest(_signature(key, message).encode(), given)
            for key in (self._key, *self._previous)
        )


def _callback_message(hs: str, exp: int, to: str) -> bytes:
    return b"\0".join((hs.encode(), str(exp).encode(), to.encode("utf-8", "surrogatepass")))


#: What every message of :meth:`CallbackSigner.sign_parts` starts with.
PARTS_VERSION = b"parts-v1\0"


def _parts_message(purpose: str, parts: Sequence[str]) -> bytes:
    message = bytearray(PARTS_VERSION)
    for part in (purpose, *parts):
        data = part.encode("utf-8", "surrogatepass")
        message += len(data).to_bytes(8, "big") + data
    return bytes(message)


def _signature(key: bytes, message: bytes) -> str:
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_redirect_url(to: str) -> None:
    """Refuse ``redirectUrl`` values that could never be a client (or that are dangerous in
    a link): 400 ``M_INVALID_PARAM``."""
    invalid = errors.MatrixError(
        400, errors.INVALID_PARAM, "redirectUrl must be an absolute URL of the client"
    )
    try:
        scheme = urllib.parse.urlsplit(to).scheme.lower()
    except ValueError:  # e.g. "http://[" (an unterminated IPv6 host)
        raise invalid from None
    if not scheme or scheme in UNSAFE_SCHEMES:
        raise invalid


def callback_url(public_baseurl: str, signer: CallbackSigner, hs: str, to: str, now: float) -> str:
    exp = int(now) + CALLBACK_LIFETIME
    query = urllib.parse.urlencode(
        {"hs": hs, "to": to, "exp": str(exp), "sig": signer.sign(hs, exp, to)}
    )
    return f"{public_baseurl}{CALLBACK_PATH.decode()}?{query}"


def homeserver_redirect_location(base_url: str, path: bytes, query: bytes, callback: str) -> bytes:
    """``<base_url><path>?<query with redirectUrl replaced by callback>``; other parameters
    (e.g. MSC3824's ``action``) are passed on."""
    pairs = urllib.parse.parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True)
    pairs = [(k, v) for k, v in pairs if k != "redirectUrl"] + [("redirectUrl", callback)]
    return base_url.encode() + path + b"?" + urllib.parse.urlencode(pairs).encode()


def redirect_url_param(query: bytes) -> str:
    """The request's ``redirectUrl``: 400 ``M_MISSING_PARAM`` as Synapse answers without it."""
    values = urllib.parse.parse_qs(query.decode("utf-8", "replace"), keep_blank_values=True).get(
        "redirectUrl", []
    )
    if len(values) != 1 or not values[0]:
        raise errors.MatrixError(
            400, errors.MISSING_PARAM, "Missing string query parameter redirectUrl"
        )
    return values[0]


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Callback:
    """A checked callback: ``hs`` issued ``login_token`` for the client at ``to``."""

    hs: str
    to: str
    login_token: str


def parse_callback(
    query: bytes, signer: CallbackSigner, homeservers: Sequence[str], now: float
) -> Callback:
    """Check a callback's query; Matrix JSON errors (400 missing / 403 refused) otherwise."""
    params = urllib.parse.parse_qs(query.decode("utf-8", "replace"), keep_blank_values=True)
    values: dict[str, str] = {}
    for name in ("hs", "to", "exp", "sig", "loginToken"):
        got = params.get(name, [])
        if len(got) != 1 or not got[0]:
            raise errors.MatrixError(
                400, errors.MISSING_PARAM, f"Missing or repeated query parameter {name}"
            )
        values[name] = got[0]
    try:
        exp = int(values["exp"])
    except ValueError:
        raise errors.MatrixError(403, errors.FORBIDDEN, "Invalid SSO callback signature") from None
    if not signer.valid(values["hs"], exp, values["to"], values["sig"]):
        raise errors.MatrixError(
            403,
            errors.FORBIDDEN,
            "Invalid SSO callback signature (not made by this portal process, or altered): "
            "start the login again from your client",
        )
    if exp < now:
        raise errors.MatrixError(
            403, errors.FORBIDDEN, "This single sign-on has expired: start the login again"
        )
    if values["hs"] not in homeservers:  # signed by us, but the config changed since
        raise errors.MatrixError(403, errors.FORBIDDEN, "Unknown homeserver in SSO callback")
    return Callback(values["hs"], values["to"], values["loginToken"])


def add_login_token(to: str, token: str) -> str:
    """``to`` with ``loginToken`` appended to its query, exactly as Synapse does it
    (``AuthHandler.add_query_param_to_url``)."""
    parts = urllib.parse.urlparse(to)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query.append(("loginToken", token))
    return urllib.parse.urlunparse(parts._replace(query=urllib.parse.urlencode(query)))


def whitelisted(to: str, whitelist: Sequence[str]) -> bool:
    """Whether ``to`` starts with an ``sso.client_whitelist`` prefix, ``to`` taken with its
    path defaulting to ``/``: ``https://app.example`` is the page ``https://app.example/``
    whitelists (the entries end at least at their host: ``parse_sso``)."""
    root = with_root_path(to)
    return any(root.startswith(prefix) for prefix in whitelist)


def confirmation_page(target: str, to: str) -> bytes:
    """Ask before sending a login token to a client outside ``sso.client_whitelist``."""
    parts = urllib.parse.urlsplit(to)
    shown = (
        parts.netloc if parts.scheme == "https" else f"{parts.scheme}://{parts.netloc}{parts.path}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        "<title>Continue to your client</title></head><body>"
        f"<p>Continuing will grant <strong>{html.escape(shown)}</strong> access to your "
        "account. Only continue if you recognise it and started this login there.</p>"
        f'<p><a href="{html.escape(target, quote=True)}">Continue</a></p>'
        "</body></html>\n"
    ).encode()
