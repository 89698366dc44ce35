"""The sign-in page as HTML: rendered from a Jinja2 template (the operator's own, from
``sso.page.template_dir``, before the portal's), every value escaped, and answered with the
headers a page that takes an identifier needs: no caching, no referrer, no framing, and a
Content-Security-Policy that allows no script at all (the page works without one) and only
the page's own nonce-marked style."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

import attr
import jinja2

from synapse_base_cs_url.portal.config.sso_page import TEMPLATE, SsoPageSettings, logo_origin
from synapse_base_cs_url.portal.web.request import PortalRequest

HTML = b"text/html; charset=utf-8"


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class PageView:
    """What one answer of the page says besides its form (the template's variables)."""

    identifier: str = ""
    """What was typed (shown back, escaped)."""
    error: str | None = None
    ask_full_id: bool = False
    """Several accounts have the name: the full Matrix ID is asked."""
    full_ids: tuple[str, ...] = ()
    retry: bool = False
    """The directory could not say: the button tries again."""
    remember: bool = False
    """The user ticked "remember" (kept ticked when the page comes back with an error)."""


class SignInPage:
    """Renders the page; built once per config (a broken operator template fails startup,
    naming ``sso.page.template_dir``)."""

    def __init__(self, settings: SsoPageSettings, action: str) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if settings.template_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(settings.template_dir)))
        loaders.append(jinja2.PackageLoader("synapse_base_cs_url.portal.sso", "templates"))
        env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=True,
            undefined=jinja2.ChainableUndefined,
        )
        self._settings = settings
        self._action = action
        try:
            self._template = env.get_template(TEMPLATE)
            self.render(state="check", provider="check", view=PageView(), csp_nonce="check")
        except jinja2.TemplateError as e:
            where = settings.template_dir or "the portal's templates"
            raise ValueError(f"sso.page.template_dir: {TEMPLATE} in {where}: {e}") from None
        origin = logo_origin(settings.logo_url)
        self._csp_images = "'self'" + (f" {origin}" if origin else "")

    def render(
        self, *, state: str | None, provider: str | None, view: PageView, csp_nonce: str
    ) -> bytes:
        values: Mapping[str, object] = {
            "lang": "en",
            "deployment": self._settings.name,
            "logo_url": self._settings.logo_url,
            "provider": provider,
            "action": self._action,
            "state": state,
            "identifier": view.identifier,
            "error": view.error,
            "ask_full_id": view.ask_full_id,
            "full_ids": list(view.full_ids),
            "retry": view.retry,
            "csp_nonce": csp_nonce,
            "remember_offered": self._settings.remember_for > 0,
            "remember": view.remember,
        }
        return self._template.render(values).encode("utf-8")

    def respond(
        self,
        request: PortalRequest,
        status: int,
        *,
        provider: str | None,
        state: str | None,
        view: PageView,
        retry_after: float | None = None,
    ) -> None:
        """Answer ``request`` with the page."""
        nonce = secrets.token_urlsafe(16)
        body = self.render(state=state, provider=provider, view=view, csp_nonce=nonce)
        for name, value in self.headers(nonce):
            request.set_header(name, value)
        if retry_after is not None:
            request.set_header(b"Retry-After", str(max(1, round(retry_after))).encode())
        request.respond(status, body, content_type=HTML)

    def headers(self, nonce: str) -> list[tuple[bytes, bytes]]:
        csp = (
            f"default-src 'none'; style-src 'nonce-{nonce}'; img-src {self._csp_images}; "
            "base-uri 'none'; frame-ancestors 'none'"
        )
        return [
            (b"Content-Security-Policy", csp.encode()),
            (b"Cache-Control", b"no-store"),
            (b"Referrer-Policy", b"no-referrer"),
            (b"X-Frame-Options", b"DENY"),
            (b"X-Content-Type-Options", b"nosniff"),
        ]
