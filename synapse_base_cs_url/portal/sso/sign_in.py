"""Single sign-on with an identity provider several homeservers share: the portal asks who is
signing in, on a page of its own, then sends the browser home.

1. ``GET .../login/sso/redirect/<idp>?redirectUrl=X`` for a shared provider (or the
   provider-less redirect when ``sso.default`` lists several homeservers): the page, with
   a form whose signed state is the redirect the client asked for (:mod:`page_state`). A
   browser that kept the optional cookie for this provider goes straight through.
2. ``POST /_synapse_base_cs_url/sso/sign_in`` (the form): the identifier typed, read as a
   login by it would be (an e-mail address, a user name, a full Matrix ID), and sent where
   :meth:`Homes.of_sign_in` decides: the account's homeserver; for a name nobody holds, a
   new account where the routes place it, reserved there. Several holders: the page asks
   for the full Matrix ID. The directory could not say: the page says so, with a retry
   (never a guess). Then ``302`` to that homeserver's redirect with the portal's callback,
   exactly as an unshared provider's redirect is answered, and the flow goes on as before.

The page tells no more than a login in redirect mode does: where a name's account lives is
what the ``307`` of a login by it tells, and several holders are named as that login's error
names them. The directory's per-client limits apply to the form as to a login.
"""

from __future__ import annotations

import logging
import math
import re
import urllib.parse

import attr

from synapse_base_cs_url.core import JsonDict
from synapse_base_cs_url.core.login_types import PASSWORD_TYPE
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.client_paths import SSO_REDIRECT_PATH
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.identifier import (
    EMAIL,
    Identifier,
    canonicalise_email,
)
from synapse_base_cs_url.portal.homes import Homes
from synapse_base_cs_url.portal.login_routes import login_by, user_login
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.placement import PLACED_ROUTE
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.sso.callback import CallbackSigner, redirect_url_param
from synapse_base_cs_url.portal.sso.page import PageView, SignInPage
from synapse_base_cs_url.portal.sso.page_state import (
    PageState,
    StateRefused,
    binding_of,
    cookie,
    cookie_name,
    cookie_value,
    decode_state,
    form_cookie_name,
    new_form_cookie,
    remembered,
)
from synapse_base_cs_url.portal.sso.to_homeserver import ToHomeserver
from synapse_base_cs_url.portal.web.request import PortalRequest

logger = logging.getLogger("synapse_base_cs_url.portal")

SIGN_IN_PATH = b"/_synapse_base_cs_url/sso/sign_in"
FORM_TYPE = b"application/x-www-form-urlencoded"
#: A Matrix ID is at most 255 bytes; an e-mail address at most 254 characters.
MAX_IDENTIFIER_LENGTH = 255
#: The form's fields (a browser sends two; a few more are tolerated, not thousands).
MAX_FORM_FIELDS = 8
#: What a form cookie this portal made looks like (anything else is replaced).
FORM_COOKIE_RE = re.compile(r"[A-Za-z0-9_-]{22}")
#: What a user name may be (the Matrix spec's localpart characters, case-folded as Synapse
#: folds a login's).
LOCALPART_RE = re.compile(r"[a-z0-9._=\-/+]+")

START_AGAIN = "Go back to your app and start signing in again."
INVALID = "That is not an e-mail address, a user name or a Matrix ID."
EMPTY = "Enter your e-mail address or user name."
AMBIGUOUS = "Accounts by this name exist on more than one homeserver: enter your full Matrix ID."
UNAVAILABLE = (
    "We cannot tell right now which homeserver holds this account, so we are not sending you "
    "anywhere yet. Try again in a moment."
)
LIMITED = "Too many attempts from your network. Wait a moment, then try again."
NOT_OFFERED = "Your account's homeserver does not offer this way of signing in."


class SignIn:
    """The page's two halves: :meth:`ask` (the redirect of a shared provider) and
    :meth:`submit` (its form)."""

    def __init__(
        self,
        config: PortalConfig,
        homes: Homes,
        signer: CallbackSigner,
        metrics: PortalMetrics,
        clock: Clock,
        *,
        page: SignInPage,
        to_homeserver: ToHomeserver,
    ) -> None:
        self._to_homeserver = to_homeserver
        self._config = config
        self._homes = homes
        self._signer = signer
        self._metrics = metrics
        self._clock = clock
        self._page = page
        self._secure = config.public_baseurl.startswith("https://")
        self._form_cookie = form_cookie_name(self._secure)

    def ask(self, request: PortalRequest, idp: str | None, offered: tuple[str, ...]) -> None:
        """A redirect for a provider ``offered`` by several homeservers: straight to the one
        this browser's cookie remembers, else the page."""
        path, query = request.path_bytes, request.query_bytes
        now = self._clock.seconds()
        cookies = request.header(b"cookie")
        key = _cookie_key(idp)
        home = remembered(cookie(cookies, cookie_name(key, self._secure)), self._signer, key, now)
        if home is not None and home in offered:
            self._metrics.sso_sign_in("remembered")
            logger.info("sso sign-in idp=%s homeserver=%s remembered", idp or "-", home)
            self._send(request, home, path, query)
            return
        ttl = self._config.sso.page.state_ttl
        # One form cookie per browser, kept while it is there (so a second tab's page does
        # not invalidate the first one's form).
        form_cookie = cookie(cookies, self._form_cookie)
        if form_cookie is None or not FORM_COOKIE_RE.fullmatch(form_cookie):
            form_cookie = new_form_cookie()
        self._set_cookie(request, self._form_cookie, form_cookie, ttl, same_site="Strict")
        exp = int(now + ttl)
        binding = binding_of(form_cookie)
        state = PageState(path.decode("latin-1"), query.decode("latin-1"), exp, binding)
        self._metrics.sso_sign_in("page")
        self._page.respond(
            request, 200, provider=idp, state=state.encode(self._signer), view=PageView()
        )

    async def submit(self, request: PortalRequest) -> None:
        """The form: check its state, read the identifier, send the browser home (or say
        why not, on the page again)."""
        fields = _form(request) or {}  # not a form this page sent: no state, refused
        try:
            state = decode_state(fields.get("state", ""), self._signer, self._clock.seconds())
            if not state.bound_to(cookie(request.header(b"cookie"), self._form_cookie)):
                # Not posted by this browser from the page it was given: another site's
                # form, or a browser that keeps no cookies.
                raise StateRefused(expired=False)
            if request.header(b"sec-fetch-site") not in (None, b"same-origin"):
                raise StateRefused(expired=False)  # a browser says: not from our page
        except StateRefused as e:
            self._metrics.sso_sign_in("refused")
            logger.info("sso sign-in refused: %s form", "expired" if e.expired else "invalid")
            why = "This sign-in page has expired." if e.expired else "This form is not valid."
            self._page.respond(
                request, 403, provider=None, state=None, view=PageView(error=f"{why} {START_AGAIN}")
            )
            return
        matched = SSO_REDIRECT_PATH.fullmatch(state.path.encode("latin-1"))
        raw_idp = matched.group("idp") if matched is not None else None
        idp = raw_idp.decode("ascii") if raw_idp else None
        offered = self._config.sso.offered_by(idp)
        typed = fields.get("identifier", "")
        remember = fields.get("remember") == "on"
        answer = _Answer(self._page, request, idp, fields["state"], remember)
        body = _login_by(typed.strip())
        if body is None:
            self._metrics.sso_sign_in("invalid")
            answer.page(
                400, PageView(identifier=typed, error=EMPTY if not typed.strip() else INVALID)
            )
            return
        client_ip = request.client_ip
        plan = self._homes.routes.plan(body, PASSWORD_TYPE, client_ip)
        try:
            home = await self._homes.of_sign_in(plan, client_ip, offered)
        except errors.AmbiguousIdentifier as e:
            self._metrics.sso_sign_in("ambiguous")
            view = PageView(
                identifier=typed, error=AMBIGUOUS, ask_full_id=True, full_ids=e.full_ids
            )
            answer.page(409, view)
            return
        except errors.MatrixError as e:
            result, text = _problem(e)
            self._metrics.sso_sign_in(result)
            view = PageView(identifier=typed, error=text, retry=result == "unavailable")
            answer.page(e.status, view, e.retry_after)
            return
        name = home.target.name
        tag = plan.to_locate.tag if plan.to_locate is not None else "-"
        placed = home.rule_name == PLACED_ROUTE
        self._metrics.sso_sign_in("placed" if placed else "sent")
        logger.info(
            "sso sign-in idp=%s homeserver=%s route=%s identifier=%s",
            idp or "-",
            name,
            home.rule_name,
            tag,
        )
        if remember:
            self._remember(request, idp, name)
        self._send(request, name, state.path.encode("latin-1"), state.query.encode("latin-1"))

    def _send(self, request: PortalRequest, name: str, path: bytes, query: bytes) -> None:
        self._to_homeserver.send(request, name, path, query, redirect_url_param(query))

    def _remember(self, request: PortalRequest, idp: str | None, name: str) -> None:
        """With ``sso.page.remember_for``, and the user's consent on the page: a signed
        cookie naming ``name`` for this provider."""
        lifetime = self._config.sso.page.remember_for
        if lifetime <= 0:
            return
        exp = int(self._clock.seconds() + lifetime)
        value = cookie_value(self._signer, _cookie_key(idp), name, exp)
        self._set_cookie(request, cookie_name(_cookie_key(idp), self._secure), value, lifetime)

    def _set_cookie(
        self,
        request: PortalRequest,
        name: str,
        value: str,
        lifetime: float,
        *,
        same_site: str = "Lax",
    ) -> None:
        """For the whole host (``Path=/``, as a ``__Host-`` cookie must be): the page's
        redirect and its form are at different paths, and a prefix before them
        (``public_baseurl``'s path) is the reverse proxy's, not the portal's to know."""
        seconds = math.ceil(lifetime)
        attributes = f"Max-Age={seconds}; Path=/; HttpOnly; SameSite={same_site}"
        if self._secure:
            attributes += "; Secure"
        request.add_header(b"Set-Cookie", f"{name}={value}; {attributes}".encode())


class _Answer:
    """The page again, with the form's state as it came (still valid: it was checked)."""

    def __init__(
        self, page: SignInPage, request: PortalRequest, idp: str | None, state: str, remember: bool
    ) -> None:
        self._page = page
        self._request = request
        self._idp = idp
        self._state = state
        self._remember = remember

    def page(self, status: int, view: PageView, retry_after: float | None = None) -> None:
        self._page.respond(
            self._request,
            status,
            provider=self._idp,
            state=self._state,
            view=attr.evolve(view, remember=self._remember),
            retry_after=retry_after,
        )


def _cookie_key(idp: str | None) -> str:
    """The cookie's provider part: the provider-less redirect has a name of its own."""
    return idp or "default"


def _problem(error: errors.MatrixError) -> tuple[str, str]:
    """What the page says for an error of the decision (and its metric's result)."""
    if error.status == 429:
        return "limited", LIMITED
    if error.status == 503:
        return "unavailable", UNAVAILABLE
    if error.errcode == errors.FORBIDDEN:
        return "not_offered", NOT_OFFERED
    return "invalid", error.message


def _form(request: PortalRequest) -> dict[str, str] | None:
    """The form's fields, one value each (``None``: not a form this page sent)."""
    content_type = (request.header(b"content-type") or b"").split(b";")[0].strip().lower()
    if content_type != FORM_TYPE:
        return None
    try:
        text = request.body().decode("utf-8")
        pairs = urllib.parse.parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None
    if any(len(values) != 1 for values in pairs.values()):
        return None
    return {name: values[0] for name, values in pairs.items()}


def _login_by(typed: str) -> JsonDict | None:
    """A password login body by what was typed (a full Matrix ID, an e-mail address, a
    user name), as the routes read one; ``None`` for what is none of them."""
    if not typed or len(typed) > MAX_IDENTIFIER_LENGTH:
        return None
    if typed.startswith("@"):
        localpart, sep, server = typed[1:].partition(":")
        if not sep or not server or not LOCALPART_RE.fullmatch(localpart.lower()):
            return None
        return user_login(typed)
    if "@" in typed:
        email = canonicalise_email(typed)
        if email is None or any(c.isspace() or c in "<>\"'" for c in email):
            return None
        return login_by(Identifier(EMAIL, email))
    if not LOCALPART_RE.fullmatch(typed.lower()):
        return None
    return user_login(typed)
