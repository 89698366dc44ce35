"""What the directory looks up: a localpart, an e-mail address or a phone number, in the form
Synapse stores it (its admin API compares exactly, and does not canonicalise)."""

from __future__ import annotations

from collections.abc import Mapping

import attr

from synapse_base_cs_url.core import LoginContext
from synapse_base_cs_url.core.context import localpart_of
from synapse_base_cs_url.core.hashes import identifier_tag
from synapse_base_cs_url.portal.state.keys import record_key

LOCALPART = "localpart"
EMAIL = "email"
MSISDN = "msisdn"


@attr.s(auto_attribs=True, frozen=True, slots=True)
class Identifier:
    """``medium`` is ``localpart``, ``email`` or ``msisdn``; ``address`` its canonical form."""

    medium: str
    address: str = attr.ib(repr=False)
    """Never logged: an e-mail address is personal data (:attr:`tag` is)."""

    @property
    def key(self) -> str:
        """What its answer is cached under: a hash, so no address is kept as such."""
        return record_key(self.medium, self.address)

    @property
    def tag(self) -> str:
        """For logs: enough to follow one identifier, useless to learn it."""
        return identifier_tag(self.medium, self.address)


def canonicalise_email(address: str) -> str | None:
    """As Synapse's ``canonicalise_email``: stripped, the local part case-folded and the
    domain lower-cased; ``None`` for what is not one ``local@domain``."""
    parts = address.strip().split("@")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0].casefold() + "@" + parts[1].lower()


def identifier_of(ctx: LoginContext, server_name: str | None) -> Identifier | None:
    """What to look up for a login by ``ctx``: a bare localpart (or a user id on the portal's
    own ``server_name``, which is how the portal writes a bare one), an e-mail address or an
    msisdn. A user id on any other server is not looked up: it names where it lives, or the
    routes place it as before."""
    if ctx.medium is not None:
        if ctx.address is None:
            return None
        if ctx.medium == EMAIL:
            email = canonicalise_email(ctx.address)
            return Identifier(EMAIL, email) if email is not None else None
        if ctx.medium == MSISDN:
            return Identifier(MSISDN, ctx.address.strip().lstrip("+"))
        return None
    if ctx.user_id is not None:
        server = ctx.user_id.partition(":")[2]
        if server_name is None or server.lower() != server_name.lower():
            return None
        localpart = localpart_of(ctx.user_id)
    else:
        localpart = ctx.localpart
    # Synapse's localparts are lower case; its login finds "Bob" as "bob".
    return Identifier(LOCALPART, localpart.lower()) if localpart else None


def phone_to_msisdn(country: object, phone: object) -> str | None:
    """An ``m.id.phone`` identifier's msisdn, as Synapse makes it (libphonenumber's E.164,
    without the ``+``); ``None`` when the number cannot be parsed, or without the
    ``phonenumbers`` package (Synapse's own; ``synapse-base-cs-url[portal]`` installs it)."""
    if not isinstance(country, str) or not isinstance(phone, str):
        return None
    try:
        import phonenumbers
    except ImportError:
        return None
    try:
        parsed = phonenumbers.parse(phone, country)
    except phonenumbers.NumberParseException:
        return None
    formatted: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return formatted[1:]


def identifier_of_body(
    ctx: LoginContext, body: Mapping[str, object], server_name: str | None
) -> Identifier | None:
    """:func:`identifier_of`, and an ``m.id.phone`` identifier (which the login context
    leaves without an address) as its msisdn."""
    found = identifier_of(ctx, server_name)
    if found is not None or ctx.medium != MSISDN:
        return found
    identifier = body.get("identifier")
    if not isinstance(identifier, Mapping) or identifier.get("type") != "m.id.phone":
        return None
    msisdn = phone_to_msisdn(identifier.get("country"), identifier.get("phone"))
    return Identifier(MSISDN, msisdn) if msisdn else None


def address_of(medium: str, body: Mapping[str, object]) -> Identifier | None:
    """The address a ``requestToken`` step (a registration's verification, a password
    reset) names: ``email``, or ``country`` and ``phone_number`` (its msisdn)."""
    if medium == MSISDN:
        msisdn = phone_to_msisdn(body.get("country"), body.get("phone_number"))
        return Identifier(MSISDN, msisdn) if msisdn else None
    if medium != EMAIL:
        return None
    email = body.get("email")
    canonical = canonicalise_email(email) if isinstance(email, str) else None
    return Identifier(EMAIL, canonical) if canonical else None


def asked_address(medium: str, address: str) -> Identifier | None:
    """An e-mail address or phone number named in a request (a homeserver's ask, an identity
    lookup), as the directory looks it up; ``None`` for an e-mail that is not one."""
    if medium == EMAIL:
        canonical = canonicalise_email(address)
        return Identifier(EMAIL, canonical) if canonical is not None else None
    if medium == MSISDN:
        msisdn = address.strip().lstrip("+")
        return Identifier(MSISDN, msisdn) if msisdn else None
    return None
