"""``sso.page``: the page on which the portal asks who is signing in, when one identity
provider is shared by several homeservers (``sso.identity_providers.<idp>: [hs1, hs2]``):
the deployment's name and logo, an operator's own templates, how long the page's form stays
valid, and whether a browser remembers the answer."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import attr
import jinja2

from synapse_base_cs_url.core.config_values import (
    non_negative_seconds,
    positive_seconds,
    section,
    type_name,
)

#: The page's template, by this name in ``sso.page.template_dir`` to replace the portal's.
TEMPLATE = "sso_sign_in.html"

PAGE_KEYS = ("name", "logo_url", "template_dir", "state_ttl", "remember_for")

#: What the page calls the deployment unless ``sso.page.name`` says otherwise.
DEFAULT_NAME = "Matrix"
#: How long the page's form may be sent back: long enough to look an address up, short
#: enough that a form left open in a tab is not a way in a day later. Synapse's own SSO
#: session cookie lasts an hour; so does the portal's callback.
DEFAULT_STATE_TTL = 3600.0
#: Longest a browser may remember whose homeserver it signs in at (a year).
MAX_REMEMBER_FOR = 365 * 24 * 3600.0
#: Longest a form may stay valid (a day): past that a stale tab should start again.
MAX_STATE_TTL = 24 * 3600.0
#: Longest deployment name shown (it is a heading, not a paragraph).
MAX_NAME_LENGTH = 100


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class SsoPageSettings:
    name: str = DEFAULT_NAME
    """The deployment's name, as the page shows it."""
    logo_url: str | None = None
    """An image shown above the form (https, or a path on the portal's own site)."""
    template_dir: Path | None = None
    """A directory of the operator's templates, used before the portal's own (same names)."""
    state_ttl: float = DEFAULT_STATE_TTL
    """How long the page's form may be sent back."""
    remember_for: float = 0.0
    """How long a browser keeps a signed cookie naming the homeserver it was sent to (0: not
    at all, the default): a returning user goes straight through."""


def parse_sso_page(raw: object) -> SsoPageSettings:
    if raw is None:
        return SsoPageSettings()
    raw = section(raw, "sso.page", PAGE_KEYS)
    return SsoPageSettings(
        name=page_name(raw.get("name", DEFAULT_NAME)),
        logo_url=logo_url(raw.get("logo_url")),
        template_dir=template_dir(raw.get("template_dir")),
        state_ttl=within(
            positive_seconds(raw.get("state_ttl", DEFAULT_STATE_TTL), "sso.page.state_ttl"),
            "sso.page.state_ttl",
            # A cookie's Max-Age is whole seconds: less than one would delete it at once.
            least=1,
            most=MAX_STATE_TTL,
        ),
        remember_for=within(
            non_negative_seconds(raw.get("remember_for", 0), "sso.page.remember_for"),
            "sso.page.remember_for",
            most=MAX_REMEMBER_FOR,
        ),
    )


def within(value: float, path: str, *, least: float = 0, most: float) -> float:
    """``value`` seconds, from ``least`` to ``most`` (the checks before it refused what is
    not a number, or negative)."""
    if value < least:
        raise ValueError(f"{path}: at least {least:g} second, not {value:g}")
    if value > most:
        raise ValueError(f"{path}: at most {most:g} seconds, not {value:g}")
    return value


def page_name(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_NAME_LENGTH:
        raise ValueError(
            f"sso.page.name: must be a name of 1 to {MAX_NAME_LENGTH} characters, not {raw!r}"
        )
    return raw.strip()


#: A logo's host (and port) as the page's Content-Security-Policy names it.
LOGO_HOST_RE = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?")
#: What a logo URL may not contain: it goes into a header and an attribute.
LOGO_UNSAFE = frozenset(" \t\r\n;,'\"<>\\")


def logo_url(raw: object) -> str | None:
    """An ``https://`` URL, or a path on the portal's site (``/logo.png``): the page's
    Content-Security-Policy allows images from there only (the URL's host is written into
    it, so it must be a plain host name)."""
    if raw is None:
        return None
    problem = "must be an https:// URL or a path starting with /"
    if not isinstance(raw, str):
        raise ValueError(f"sso.page.logo_url: {problem}, not {type_name(raw)}")
    try:
        parts = urllib.parse.urlsplit(raw)
    except ValueError:
        raise ValueError(f"sso.page.logo_url: {problem}, not {raw!r}") from None
    on_site = not parts.scheme and not parts.netloc and raw.startswith("/")
    web = parts.scheme == "https" and bool(LOGO_HOST_RE.fullmatch(parts.netloc))
    if not (on_site or web) or LOGO_UNSAFE & set(raw) or raw.startswith("//"):
        raise ValueError(f"sso.page.logo_url: {problem}, not {raw!r}")
    return raw


def logo_origin(url: str | None) -> str | None:
    """The origin of an ``https://`` logo (``None``: none, or on the portal's own site)."""
    parts = urllib.parse.urlsplit(url or "")
    return f"https://{parts.netloc}" if parts.scheme == "https" else None


def template_dir(raw: object) -> Path | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw:
        raise ValueError("sso.page.template_dir: must be a directory path")
    path = Path(raw)
    if not path.is_dir():
        raise ValueError(f"sso.page.template_dir: {raw} is not a directory")
    template = path / TEMPLATE
    if template.exists():
        try:
            jinja2.Environment().parse(template.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, jinja2.TemplateSyntaxError) as e:
            raise ValueError(f"sso.page.template_dir: {template}: {e}") from None
    return path
