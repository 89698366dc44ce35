"""Reading a ``POST /login`` body: JSON checks and who is logging in.

The portal only needs enough of the body to route it; the homeserver still validates it in
full. A bare localpart (``"alice"``) is qualified with the portal's ``server_name`` if one is
configured, so ``user_id`` routes and hash pools see ``@alice:<server_name>`` exactly as if the
user had typed the full id; without ``server_name`` only ``localpart`` matchers (and pools,
keyed on the localpart) can route it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synapse_base_cs_url.core.login_types import APPSERVICE_TYPE, PASSWORD_TYPE, TOKEN_TYPE
from synapse_base_cs_url.portal import errors


def check_login_body(body: Mapping[str, Any]) -> str:
    """Check the fields the portal routes on; return the login type.

    Raises 400 ``M_BAD_JSON`` naming the missing or malformed field.
    """
    login_type = body.get("type")
    if not isinstance(login_type, str) or not login_type:
        raise errors.bad_json(
            "Missing or invalid 'type': give the login type, e.g. m.login.password"
        )
    identifier = body.get("identifier")
    if identifier is not None:
        _check_identifier(identifier)
    if login_type in (PASSWORD_TYPE, APPSERVICE_TYPE) and not _names_a_user(body):
        raise errors.bad_json(
            f"{login_type} needs an 'identifier' (or the deprecated 'user', or "
            "'medium' and 'address')"
        )
    if login_type == TOKEN_TYPE and not isinstance(body.get("token"), str):
        raise errors.bad_json("m.login.token needs a 'token' string")
    return login_type


def _check_identifier(identifier: object) -> None:
    if not isinstance(identifier, Mapping):
        raise errors.bad_json("'identifier' must be an object with a 'type'")
    id_type = identifier.get("type")
    if not isinstance(id_type, str):
        raise errors.bad_json("Missing or invalid 'identifier.type'")
    required = {
        "m.id.user": ("user",),
        "m.id.thirdparty": ("medium", "address"),
        "m.id.phone": ("country", "phone"),
    }.get(id_type, ())
    for field in required:
        if not isinstance(identifier.get(field), str):
            raise errors.bad_json(f"Missing or invalid 'identifier.{field}' for {id_type}")


def _names_a_user(body: Mapping[str, Any]) -> bool:
    if isinstance(body.get("identifier"), Mapping):
        return True
    if isinstance(body.get("user"), str):
        return True
    return isinstance(body.get("medium"), str) and isinstance(body.get("address"), str)
