"""What a homeserver's answers mean when an admin token is checked, written once for the
portal (at startup and at each reload, over Twisted) and for ``check --config`` (a blocking
client): ``whoami`` with the token, then Synapse's admin API for that user.

``401``/``403`` is a refusal (an unknown token; not an admin's); anything else that is not a
success (a ``404`` from a proxy that does not pass the admin API, a ``5xx`` from a proxy in
front of a Synapse that is down) is no answer: the portal asks again later, ``check`` warns."""

from __future__ import annotations

import attr

#: What a homeserver answers a token it refuses.
REFUSED = (401, 403)


@attr.s(auto_attribs=True, frozen=True, slots=True)
class TokenVerdict:
    ok: bool | None
    """``True``: an admin's token; ``False``: refused; ``None``: no answer."""
    detail: str
    """Whose token it is, or what is wrong (never the token)."""
    user_id: str | None = None
    """Whose token ``whoami`` said it is (``None``: it did not say)."""


def after_whoami(status: int, user_id: object) -> TokenVerdict | str:
    """The verdict ``whoami``'s answer already gives, or the user id to ask the admin API
    about."""
    if status in REFUSED:
        return TokenVerdict(False, f"the token is refused (whoami answered {status})")
    if status != 200 or not isinstance(user_id, str):
        return TokenVerdict(None, f"whoami answered {status}")
    return user_id


def after_admin_api(user_id: str, status: int) -> TokenVerdict:
    if status == 200:
        return TokenVerdict(True, f"{user_id}, a server admin: may read every account", user_id)
    if status in REFUSED:
        return TokenVerdict(
            False, f"{user_id} is not a server admin (the admin API answered {status})", user_id
        )
    return TokenVerdict(None, f"the admin API answered {status} about {user_id}", user_id)
