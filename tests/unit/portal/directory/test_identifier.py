"""What the directory looks up for a login: canonical as Synapse stores it, never a user id
that names its own server."""

from __future__ import annotations

from synapse_base_cs_url.core import LoginContext
from synapse_base_cs_url.portal.directory.identifier import (
    EMAIL,
    LOCALPART,
    MSISDN,
    Identifier,
    address_of,
    canonicalise_email,
    identifier_of,
)


def test_emails_are_canonicalised_as_synapse_does() -> None:
    assert canonicalise_email("  Alice.B@Example.COM ") == "alice.b@example.com"
    # casefold, not lower: the German sharp s, as Synapse's canonicalise_email.
    assert canonicalise_email("STRASSE@x.de") == "strasse@x.de"
    assert canonicalise_email("Straße@X.de") == "strasse@x.de"
    assert canonicalise_email("no-at-sign") is None
    assert canonicalise_email("a@b@c") is None
    assert canonicalise_email("@example.com") is None


def ident(**ctx: str) -> Identifier | None:
    return identifier_of(LoginContext(**ctx), server_name="portal.example.com")


def test_bare_localparts_and_the_portals_own_server_name_are_looked_up() -> None:
    assert ident(localpart="Bob") == Identifier(LOCALPART, "bob")
    assert ident(user_id="@Bob:portal.example.com", localpart="Bob") == Identifier(LOCALPART, "bob")
    assert ident(user_id="@bob:elsewhere.org", localpart="bob") is None


def test_third_party_ids() -> None:
    assert ident(medium="email", address=" A@B.org") == Identifier(EMAIL, "a@b.org")
    assert ident(medium="email", address="not an email") is None
    assert ident(medium="msisdn", address="+4477009000") == Identifier(MSISDN, "4477009000")
    assert ident(medium="msisdn") is None  # m.id.phone: no address the portal can tell
    assert ident(medium="carrier-pigeon", address="x") is None
    assert ident() is None


def test_keys_and_tags_never_hold_the_address() -> None:
    email = Identifier(EMAIL, "alice@example.com")
    assert "alice" not in email.key and "example" not in email.key
    assert email.tag.startswith("email:") and "alice" not in email.tag
    assert "alice" not in repr(email)
    assert Identifier(LOCALPART, "alice").key != Identifier(EMAIL, "alice").key


def test_a_phone_login_is_looked_up_by_its_msisdn_as_synapse_makes_it() -> None:
    from synapse_base_cs_url.portal.directory.identifier import identifier_of_body

    body = {"identifier": {"type": "m.id.phone", "country": "GB", "phone": "07470 674927"}}
    ctx = LoginContext.from_login_body(body)
    assert identifier_of_body(ctx, body, None) == Identifier(MSISDN, "447470674927")
    garbage = {"identifier": {"type": "m.id.phone", "country": "GB", "phone": "not a number"}}
    assert identifier_of_body(LoginContext.from_login_body(garbage), garbage, None) is None
    missing = {"identifier": {"type": "m.id.phone"}}
    assert identifier_of_body(LoginContext.from_login_body(missing), missing, None) is None


def test_the_address_a_request_token_step_names() -> None:
    assert address_of("email", {"email": " Bob@Example.COM"}) == Identifier(
        EMAIL, "bob@example.com"
    )
    assert address_of("email", {"email": "not an address"}) is None
    phone = {"country": "GB", "phone_number": "07470 674927"}
    assert address_of("msisdn", phone) == Identifier(MSISDN, "447470674927")
    assert address_of("msisdn", {"country": "GB", "phone_number": "nonsense"}) is None
    assert address_of("msisdn", {}) is None
    assert address_of("carrier-pigeon", {"email": "a@b.c"}) is None
