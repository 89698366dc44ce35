"""What a password reset's first step names: an e-mail address, canonical as Synapse stores
it, or a phone number as its msisdn."""

from __future__ import annotations

from synapse_base_cs_url.portal.directory.identifier import EMAIL, MSISDN, Identifier
from synapse_base_cs_url.portal.password_reset import _address_of


def test_the_address_a_reset_names() -> None:
    assert _address_of("email", {"email": " Bob@Example.COM"}) == Identifier(
        EMAIL, "bob@example.com"
    )
    assert _address_of("email", {"email": "not an address"}) is None
    phone = {"country": "GB", "phone_number": "07470 674927"}
    assert _address_of("msisdn", phone) == Identifier(MSISDN, "447470674927")
    assert _address_of("msisdn", {"country": "GB", "phone_number": "nonsense"}) is None
    assert _address_of("msisdn", {}) is None
    assert _address_of("carrier-pigeon", {"email": "a@b.c"}) is None
