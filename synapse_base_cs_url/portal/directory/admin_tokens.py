"""The admin tokens checked at startup (and by ``check``): a token its homeserver refuses
(unknown, or not an admin's) stops the portal with one line naming the homeserver; a
homeserver that does not answer is only a warning, since one homeserver's outage must never
keep the portal from starting."""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Sequence

import attr
from twisted.internet import defer

from synapse_base_cs_url.core.json_dict import json_object
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.client_paths import WHOAMI_PATH
from synapse_base_cs_url.portal.config.homeservers import Homeserver
from synapse_base_cs_url.portal.directory.sources import USER_PATH, admin_request
from synapse_base_cs_url.portal.upstream.client import Upstream

logger = logging.getLogger("synapse_base_cs_url.portal.directory")

#: What a homeserver answers a token it refuses (unknown; not an admin's). Anything else (a
#: 502 from a proxy in front of a Synapse that is down) is no answer.
REFUSED = (401, 403)


@attr.s(auto_attribs=True, frozen=True, slots=True)
class TokenCheck:
    homeserver: str
    ok: bool | None
    """``True``: an admin's token; ``False``: refused; ``None``: no answer."""
    detail: str
    """Whose token it is, or what is wrong (never the token)."""


async def check_token(upstream: Upstream, hs: Homeserver) -> TokenCheck:
    try:
        whoami = await admin_request(upstream, hs, WHOAMI_PATH)
        user = json_object(whoami.body) if whoami.status == 200 else None
        user_id = user.get("user_id") if user is not None else None
        if whoami.status in REFUSED:
            return TokenCheck(
                hs.name, False, f"the token is refused (whoami answered {whoami.status})"
            )
        if not isinstance(user_id, str):
            return TokenCheck(hs.name, None, f"whoami answered {whoami.status}")
        path = USER_PATH.format(user_id=urllib.parse.quote(user_id, safe="")).encode()
        admin = await admin_request(upstream, hs, path)
    except errors.MatrixError as e:
        return TokenCheck(hs.name, None, e.message)
    if admin.status == 200:
        return TokenCheck(hs.name, True, f"{user_id}, a server admin: may read every account")
    if admin.status not in REFUSED:
        return TokenCheck(hs.name, None, f"the admin API answered {admin.status}")
    return TokenCheck(
        hs.name,
        False,
        f"{user_id} is not a server admin (the admin API answered {admin.status})",
    )


async def check_tokens(upstream: Upstream, homeservers: Sequence[Homeserver]) -> list[TokenCheck]:
    """Every homeserver's admin token, checked at once."""
    with_tokens = [hs for hs in homeservers if hs.admin_token is not None]
    checks = [defer.ensureDeferred(check_token(upstream, hs)) for hs in with_tokens]
    return list(await defer.gatherResults(checks))


class RefusedToken(Exception):
    """An admin token its homeserver refuses; the message is the one line printed."""


async def check_at_startup(upstream: Upstream, homeservers: Sequence[Homeserver]) -> None:
    for check in await check_tokens(upstream, homeservers):
        if check.ok is False:
            raise RefusedToken(f"homeservers.{check.homeserver}.admin_token_file: {check.detail}")
        if check.ok is None:
            logger.warning(
                "directory: %s did not answer the admin token check (%s); its accounts are "
                "found once it answers",
                check.homeserver,
                check.detail,
            )
        else:
            logger.info("directory: %s admin token: %s", check.homeserver, check.detail)
