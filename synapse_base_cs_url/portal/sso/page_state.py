"""What the sign-in page hands the browser to bring back, signed by the portal: the form's
state (the SSO redirect the client asked for, until when the form may be sent, and the hash
of the browser's form cookie), the form cookie itself, and the optional cookie that
remembers which homeserver a browser was sent to for a provider.

Nothing in the form is trusted but the identifier the user typed: the redirect's path and
query (the client's ``redirectUrl``, the provider, MSC3824's ``action``...) come back only
under the portal's signature, so the form cannot be pointed at another client or provider.
A state is good only with the form cookie it was made for (``SameSite=Strict``, set with the
page): another site can fetch a page and its state, but cannot make a browser post it with
that browser's cookie, so it cannot sign anybody in, or plant a remembered homeserver, in
their browser (login CSRF).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Any

import attr

from synapse_base_cs_url.portal.sso.callback import CallbackSigner

#: The purpose each kind is signed with (:meth:`CallbackSigner.sign_parts`): a form's state
#: and a cookie cannot pass for each other, nor for a callback.
STATE_PURPOSE = "sso-sign-in-state"
COOKIE_PURPOSE = "sso-sign-in-home"
#: The remembering cookie's name: one per identity provider (``<prefix><idp>``).
COOKIE_PREFIX = "synapse_base_cs_url_sso_"
#: The form cookie's name (one per browser, shared by its tabs).
FORM_COOKIE = "synapse_base_cs_url_sso_form"
#: Before both names on an https portal: a ``__Host-`` cookie is the portal's own host's
#: (``Secure``, ``Path=/``, no ``Domain``), so a sibling subdomain cannot set one for it
#: (SameSite alone counts every subdomain of a site as the same site).
HOST_PREFIX = "__Host-"
#: Longest state or cookie value read: a state carries a redirect's query, which a request
#: line of 16 KiB bounds (its base64 is a third longer).
MAX_VALUE_LENGTH = 32_768


@attr.s(auto_attribs=True, frozen=True, slots=True)
class PageState:
    """An SSO redirect the client asked for: ``path`` (``/_matrix/client/v3/login/sso/
    redirect/<idp>``), its ``query``, and when its form stops being accepted."""

    path: str
    query: str
    exp: int
    binding: str
    """The hash of the form cookie this state goes with (:func:`binding_of`)."""

    def encode(self, signer: CallbackSigner) -> str:
        return _sealed(signer, STATE_PURPOSE, (), [self.path, self.query, self.exp, self.binding])

    def bound_to(self, form_cookie: str | None) -> bool:
        """Whether this browser's form cookie is the one the state was made for."""
        return form_cookie is not None and hmac.compare_digest(
            self.binding, binding_of(form_cookie)
        )


def new_form_cookie() -> str:
    return secrets.token_urlsafe(16)


def binding_of(form_cookie: str) -> str:
    """What a state keeps of a form cookie: its hash (the cookie is the secret)."""
    return hashlib.sha256(form_cookie.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class StateRefused(Exception):
    """A form's state that was not made by this deployment, was altered, or has expired."""

    def __init__(self, expired: bool) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def decode_state(raw: str, signer: CallbackSigner, now: float) -> PageState:
    """The state a form brought back, checked; :class:`StateRefused` otherwise."""
    fields = _opened(raw, signer, STATE_PURPOSE, (), (str, str, int, str))
    if fields is None:
        raise StateRefused(expired=False)
    path, query, exp, binding = fields
    if exp < now:
        raise StateRefused(expired=True)
    return PageState(path, query, exp, binding)


def cookie_name(idp: str, secure: bool) -> str:
    """The remembering cookie's name for ``idp`` (``secure``: an https portal)."""
    return (HOST_PREFIX if secure else "") + COOKIE_PREFIX + idp


def form_cookie_name(secure: bool) -> str:
    return (HOST_PREFIX if secure else "") + FORM_COOKIE


def cookie_value(signer: CallbackSigner, idp: str, homeserver: str, exp: int) -> str:
    """A browser's memory of where it signs in with ``idp``, until ``exp``."""
    return _sealed(signer, COOKIE_PURPOSE, (idp,), [homeserver, exp])


def remembered(raw: str | None, signer: CallbackSigner, idp: str, now: float) -> str | None:
    """The homeserver a cookie remembers for ``idp`` (``None``: none, forged, or expired)."""
    fields = _opened(raw, signer, COOKIE_PURPOSE, (idp,), (str, int)) if raw else None
    if fields is None or fields[1] < now:
        return None
    homeserver: str = fields[0]
    return homeserver


def cookie(header: bytes | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header (read pair by pair: one malformed
    cookie does not hide the others); ``None`` also when the browser sends two of that name
    (one of them set by somebody else for a wider domain or path: neither is trusted)."""
    if header is None:
        return None
    found = [
        value.strip().strip('"')
        for key, eq, value in (
            pair.strip().partition("=") for pair in header.decode("latin-1").split(";")
        )
        if eq and key == name
    ]
    return found[0] if len(found) == 1 else None


def _sealed(
    signer: CallbackSigner, purpose: str, context: tuple[str, ...], fields: list[str | int]
) -> str:
    """``<base64url JSON of fields>.<signature>``: ``fields`` signed under ``purpose``, with
    ``context`` (what the reader knows already, e.g. the provider a cookie is for) signed
    too but not carried."""
    payload = _b64(json.dumps(fields, ensure_ascii=False).encode())
    return payload + "." + signer.sign_parts(purpose, *context, *(str(f) for f in fields))


def _opened(
    raw: str,
    signer: CallbackSigner,
    purpose: str,
    context: tuple[str, ...],
    kinds: tuple[type, ...],
) -> list[Any] | None:
    """What :func:`_sealed` made of fields of these ``kinds`` (an ``int`` is never a
    ``bool``), its signature checked; ``None`` for anything else."""
    if len(raw) > MAX_VALUE_LENGTH:
        return None
    payload_b64, dot, sig = raw.partition(".")
    if not dot or not sig:
        return None
    try:
        fields = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        return None
    if (
        not isinstance(fields, list)
        or len(fields) != len(kinds)
        or any(
            not isinstance(f, kind) or isinstance(f, bool)
            for f, kind in zip(fields, kinds, strict=True)
        )
    ):
        return None
    if not signer.valid_parts(sig, purpose, *context, *(str(f) for f in fields)):
        return None
    return fields


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
