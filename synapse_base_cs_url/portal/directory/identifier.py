"""What the directory looks up: a localpart, an e-mail address or a phone number, in the form
Synapse stores it (its admin API compares exactly, and does not canonicalise)."""

from __future__ import annotations

import attr

from synapse_base_cs_url.core import LoginContext
from synapse_base_cs_url.core.context import localpart_of
from synapse_base_cs_url.portal.state.keys import token_key

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
        return token_key(f"{self.medium}:{self.address}")

    @property
    def tag(self) -> str:
        """For logs: enough to follow one identifier, useless to learn it."""
        return f"{self.medium}:{self.key[:12]}"


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
