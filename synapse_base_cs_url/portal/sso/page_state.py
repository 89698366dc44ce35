"""What the sign-in page hands the browser to bring back, signed by the portal: the form's
state (the SSO redirect the client asked for, and until when the form may be sent), and the
optional cookie that remembers which homeserver a browser was sent to for a provider.

Nothing in the form is trusted but the identifier the user typed: the redirect's path and
query (the client's ``redirectUrl``, the provider, MSC3824's ``action``...) come back only
under the portal's signature, so the form cannot be pointed at another client or provider,
and a page made elsewhere cannot post to the portal (the state is its CSRF token).
"""

from __future__ import annotations

import base64
import binascii
import json

import attr

from synapse_base_cs_url.portal.sso.callback import CallbackSigner

#: The first signed part of each kind: a form's state and a cookie cannot pass for each
#: other, nor for a callback (which signs three parts, none of them these).
STATE_PURPOSE = "sso-sign-in-state"
COOKIE_PURPOSE = "sso-sign-in-home"
#: The cookie's name: one per identity provider (``<prefix><idp>``), for the whole site.
COOKIE_PREFIX = "synapse_base_cs_url_sso_"
#: Longest state or cookie value read (a redirect URL is a few hundred bytes; a long
#: ``redirectUrl`` a few thousand).
MAX_VALUE_LENGTH = 16_384


@attr.s(auto_attribs=True, frozen=True, slots=True)
class PageState:
    """An SSO redirect the client asked for: ``path`` (``/_matrix/client/v3/login/sso/
    redirect/<idp>``), its ``query``, and when its form stops being accepted."""

    path: str
    query: str
    exp: int

    def encode(self, signer: CallbackSigner) -> str:
        payload = _b64(json.dumps([self.path, self.query, self.exp]).encode())
        return (
            payload + "." + signer.sign_parts(STATE_PURPOSE, self.path, self.query, str(self.exp))
        )


class StateRefused(Exception):
    """A form's state that was not made by this deployment, was altered, or has expired."""

    def __init__(self, expired: bool) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def decode_state(raw: str, signer: CallbackSigner, now: float) -> PageState:
    """The state a form brought back, checked; :class:`StateRefused` otherwise."""
    fields = _signed_fields(raw)
    if fields is None:
        raise StateRefused(expired=False)
    payload, sig = fields
    if (
        not isinstance(payload, list)
        or len(payload) != 3
        or not isinstance(payload[0], str)
        or not isinstance(payload[1], str)
        or not isinstance(payload[2], int)
        or isinstance(payload[2], bool)
    ):
        raise StateRefused(expired=False)
    path, query, exp = payload
    if not signer.valid_parts(sig, STATE_PURPOSE, path, query, str(exp)):
        raise StateRefused(expired=False)
    if exp < now:
        raise StateRefused(expired=True)
    return PageState(path, query, exp)


def cookie_name(idp: str) -> str:
    return COOKIE_PREFIX + idp


def cookie_value(signer: CallbackSigner, idp: str, homeserver: str, exp: int) -> str:
    """A browser's memory of where it signs in with ``idp``, until ``exp``."""
    payload = _b64(json.dumps([homeserver, exp]).encode())
    return payload + "." + signer.sign_parts(COOKIE_PURPOSE, idp, homeserver, str(exp))


def remembered(raw: str | None, signer: CallbackSigner, idp: str, now: float) -> str | None:
    """The homeserver a cookie remembers for ``idp`` (``None``: none, forged, or expired)."""
    fields = _signed_fields(raw) if raw else None
    if fields is None:
        return None
    payload, sig = fields
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not isinstance(payload[0], str)
        or not isinstance(payload[1], int)
        or isinstance(payload[1], bool)
    ):
        return None
    homeserver: str = payload[0]
    exp: int = payload[1]
    if exp < now or not signer.valid_parts(sig, COOKIE_PURPOSE, idp, homeserver, str(exp)):
        return None
    return homeserver


def _signed_fields(raw: str) -> tuple[object, str] | None:
    """``<base64url JSON>.<signature>`` split and the JSON read (``None``: not that shape)."""
    if len(raw) > MAX_VALUE_LENGTH:
        return None
    payload_b64, dot, sig = raw.partition(".")
    if not dot or not sig:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        return None
    return payload, sig


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
