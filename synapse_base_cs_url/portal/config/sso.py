"""``sso``: which homeserver serves which identity provider, the login token store, and the
keys that sign the portal's SSO callbacks."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path

import attr

from synapse_base_cs_url.core.config_values import (
    as_list,
    positive_int,
    positive_seconds,
    prefixed,
    section,
    type_name,
)
from synapse_base_cs_url.portal.config.sso_page import SsoPageSettings, parse_sso_page
from synapse_base_cs_url.portal.config.state import Backend, StateSettings

#: Synapse's login tokens live 2 minutes unless configured otherwise.
DEFAULT_SSO_TOKEN_TTL = 120.0

DEFAULT_SSO_MAX_TOKENS = 100_000

#: Random bytes in a signing key file; fewer would weaken the HMAC.
MIN_SIGNING_KEY_BYTES = 32

SSO_KEYS = (
    "default",
    "identity_providers",
    "client_whitelist",
    "token_ttl",
    "max_tokens",
    "signing_key_file",
    "previous_signing_key_files",
    "page",
)

#: Identity provider ids as Synapse's ``/login/sso/redirect/<idp_id>`` accepts them.
IDP_ID_RE = re.compile(r"[A-Za-z0-9_.~-]+")


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class SigningKeys:
    """The key that signs SSO callbacks, and older ones still accepted (rotation)."""

    current: bytes = attr.ib(repr=False)
    previous: tuple[bytes, ...] = attr.ib(default=(), repr=False)


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class SsoSettings:
    """Which homeserver serves which identity provider, and the SSO login token store."""

    default: str
    """Homeserver for SSO redirects without (or with an unlisted) identity provider, for
    legacy CAS redirects, and for ``m.login.token`` logins whose token the portal did not see
    being issued (the first of ``sso.default`` when it is a list)."""
    identity_providers: Mapping[str, tuple[str, ...]] = attr.Factory(dict)
    """Identity provider id -> the homeservers that offer it (several: a shared provider,
    for which the portal asks who is signing in)."""
    default_offered_by: tuple[str, ...] = ()
    """``sso.default`` as a list of several homeservers: a redirect without an identity
    provider is offered by each of them, so the portal asks who is signing in."""
    client_whitelist: tuple[str, ...] = ()
    """URL prefixes of clients the portal sends a login token to without asking the user."""
    token_ttl: float = DEFAULT_SSO_TOKEN_TTL
    max_tokens: int = DEFAULT_SSO_MAX_TOKENS
    signing_keys: SigningKeys | None = None
    """From ``signing_key_file`` (and ``previous_signing_key_files``); ``None``: a random
    key per process, which only one portal process can use."""
    page: SsoPageSettings = attr.Factory(SsoPageSettings)
    configured: bool = False
    """Whether portal.yaml has an ``sso`` section."""

    def offered_by(self, idp_id: str | None) -> tuple[str, ...]:
        """The homeservers a redirect for ``idp_id`` (``None``: no provider named) may go
        to: one, or several when the provider is shared (the portal asks who signs in). A
        provider not listed goes to ``default`` (the first of ``sso.default``): a
        homeserver that offers it is not known."""
        if idp_id is not None:
            return self.identity_providers.get(idp_id, (self.default,))
        return self.default_offered_by or (self.default,)

    @property
    def homeservers(self) -> tuple[str, ...]:
        """Every homeserver SSO logins can go to: the default first, then in config order."""
        names = [self.default, *self.default_offered_by]
        for offering in self.identity_providers.values():
            names += offering
        return tuple(dict.fromkeys(names))


def homeserver_names(
    raw: object, path: str, parse_homeserver_name: Callable[[object], str]
) -> tuple[str, ...]:
    """One homeserver name, or a list of them (a provider several homeservers offer)."""
    if isinstance(raw, (list, tuple)):
        if not raw:
            raise ValueError(f"{path}: must name at least one homeserver")
        names = tuple(
            prefixed(f"{path}[{i}]", parse_homeserver_name, item) for i, item in enumerate(raw)
        )
        if len(set(names)) != len(names):
            raise ValueError(f"{path}: names a homeserver twice")
        return names
    return (prefixed(path, parse_homeserver_name, raw),)


def parse_sso(
    raw: object, default: str, parse_homeserver_name: Callable[[object], str]
) -> SsoSettings:
    if raw is None:
        return SsoSettings(default=default)
    raw = section(raw, "sso", SSO_KEYS)
    default_offered_by: tuple[str, ...] = ()
    if raw.get("default") is not None:
        offering = homeserver_names(raw["default"], "sso.default", parse_homeserver_name)
        default = offering[0]
        default_offered_by = offering if len(offering) > 1 else ()
    idps_raw = raw.get("identity_providers")
    idps: dict[str, tuple[str, ...]] = {}
    if idps_raw is not None:
        if not isinstance(idps_raw, Mapping):
            raise ValueError(
                "sso.identity_providers: must be a mapping of identity provider id to "
                f"a homeserver name or a list of them, not {type_name(idps_raw)}"
            )
        for idp_id, hs in idps_raw.items():
            if not isinstance(idp_id, str) or not IDP_ID_RE.fullmatch(idp_id):
                raise ValueError(
                    f"sso.identity_providers: invalid identity provider id {idp_id!r}; "
                    "Synapse's ids use letters, digits, '_', '.', '~' and '-'"
                )
            idps[idp_id] = homeserver_names(
                hs, f"sso.identity_providers.{idp_id}", parse_homeserver_name
            )
    whitelist_raw = raw.get("client_whitelist")
    whitelist: tuple[str, ...] = ()
    if whitelist_raw is not None:
        if not isinstance(whitelist_raw, (list, tuple)):
            raise ValueError(
                "sso.client_whitelist: must be a list of URL prefixes, not "
                + type_name(whitelist_raw)
            )
        whitelist = tuple(
            whitelist_entry(prefix, f"sso.client_whitelist[{i}]")
            for i, prefix in enumerate(whitelist_raw)
        )
    token_ttl = positive_seconds(raw.get("token_ttl", DEFAULT_SSO_TOKEN_TTL), "sso.token_ttl")
    max_tokens = positive_int(raw.get("max_tokens", DEFAULT_SSO_MAX_TOKENS), "sso.max_tokens")
    return SsoSettings(
        default=default,
        identity_providers=idps,
        default_offered_by=default_offered_by,
        client_whitelist=whitelist,
        token_ttl=token_ttl,
        max_tokens=max_tokens,
        signing_keys=parse_signing_keys(raw),
        page=parse_sso_page(raw.get("page")),
        configured=True,
    )


def with_root_path(url: str) -> str:
    """``url`` with ``/`` for its path if it names a host and no path (``https://host?x``
    is ``https://host/?x``), else as it is.

    ``sso.client_whitelist`` entries are prefixes compared as strings: ``https://host``
    would also match ``https://host.evil.example``, and a client URL ``https://host`` would
    not match ``https://host/``. With the slash, a prefix ends at its host, and both spellings
    of a host's root page compare alike."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: not a URL to normalise
        return url
    if not parts.netloc or parts.path:
        return url
    # Where the host ends in ``url`` itself (urlsplit drops some characters, e.g. tabs).
    end = url.find("//") + 2 + len(parts.netloc)
    if url[end - len(parts.netloc) : end] != parts.netloc:
        return url
    return url[:end] + "/" + url[end:]


def whitelist_entry(raw: object, path: str) -> str:
    """One ``sso.client_whitelist`` entry: a URL prefix with a scheme and, for ``http`` and
    ``https``, a host, ending at least at its host (``https://host`` becomes
    ``https://host/``: see ``with_root_path``). A web prefix without a host (``app.example``,
    ``https://``) cannot say which site is trusted, and would match more than the operator
    meant. An app's own scheme (``com.example.app:/callback``, as mobile clients register)
    names no host and needs none: no other site can answer it."""
    example = "such as https://app.element.io/"
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"{path}: must be a URL prefix {example}, not {raw!r}")
    try:
        parts = urllib.parse.urlsplit(raw)
        web = parts.scheme.lower() in ("http", "https")
        named = bool(parts.scheme and (parts.hostname or not web))
    except ValueError:  # e.g. an unclosed IPv6 bracket, or a port that is not a number
        named = False
    if not named:
        raise ValueError(
            f"{path}: must be a URL prefix with a scheme and a host, {example}, not {raw!r}"
        )
    return with_root_path(raw)


def check_sso_sharing(sso: SsoSettings, workers: int, state: StateSettings) -> None:
    """Single sign-on across processes needs one signing key and one token store."""
    shared = workers > 1 or state.backend is Backend.REDIS
    if not (shared and sso.configured):
        return
    if sso.signing_keys is None:
        why = "state.backend is redis" if state.backend is Backend.REDIS else "workers > 1"
        raise ValueError(
            f"sso.signing_key_file: required when {why} (state.backend / workers): every "
            "portal process must sign and check SSO callbacks with the same key; make one "
            "with: synapse-base-cs-url generate-key FILE"
        )
    if state.backend is Backend.MEMORY:
        raise ValueError(
            f"state.backend: workers: {workers} with single sign-on needs backend redis: "
            "a login token's homeserver, recorded by one process, must be found by the "
            "process that receives the token login"
        )


def parse_signing_keys(raw: Mapping[object, object]) -> SigningKeys | None:
    """``sso.signing_key_file`` and ``sso.previous_signing_key_files``, read now."""
    path = raw.get("signing_key_file")
    previous_raw = raw.get("previous_signing_key_files")
    if path is None:
        if previous_raw is not None:
            raise ValueError("sso.previous_signing_key_files: only used with sso.signing_key_file")
        return None
    current = read_signing_key(path, "sso.signing_key_file")
    previous: list[bytes] = []
    if previous_raw is not None:
        items = as_list(previous_raw)
        if items is None:
            raise ValueError(
                "sso.previous_signing_key_files: must be a list of file paths, not "
                + type_name(previous_raw)
            )
        for i, item in enumerate(items):
            previous.append(read_signing_key(item, f"sso.previous_signing_key_files[{i}]"))
    return SigningKeys(current=current, previous=tuple(previous))


def read_signing_key(raw: object, path: str) -> bytes:
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"{path}: must be a file path")
    try:
        key = Path(raw).read_bytes()
    except OSError as e:
        raise ValueError(
            f"{path}: cannot read {raw}: {e.strerror or e} "
            f"(make one with: synapse-base-cs-url generate-key {raw})"
        ) from None
    if len(key) < MIN_SIGNING_KEY_BYTES:
        raise ValueError(
            f"{path}: {raw} holds {len(key)} bytes; a signing key needs at least "
            f"{MIN_SIGNING_KEY_BYTES} (make one with: synapse-base-cs-url generate-key FILE)"
        )
    return key
