"""A routing config from either file an operator has: a ``homeserver.yaml`` (its
``modules:`` entry for this module) or a ``portal.yaml``, parsed as at run time."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import attr

from synapse_base_cs_url.core import JsonDict, LoginContext, RuleSet, Selection
from synapse_base_cs_url.core.config_values import read_yaml
from synapse_base_cs_url.core.urls import validate_base_url
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.login_routes import select_by_server_name, server_names
from synapse_base_cs_url.synapse_module.config import ModuleConfig
from synapse_base_cs_url.synapse_module.selection import DEFAULT_RULE, context_for

#: The names homeserver.yaml may give the module under ``modules:``.
MODULE_PATHS = (
    "synapse_base_cs_url.BaseCsUrlModule",
    "synapse_base_cs_url.synapse_module.module.BaseCsUrlModule",
    "synapse_base_cs_url.synapse_module.BaseCsUrlModule",
)

Kind = Literal["module", "portal"]


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class RoutingConfig:
    """What decides where a login goes, from one file."""

    path: str
    kind: Kind
    rules: RuleSet[str]
    """The module's ``rules`` (targets are URLs) or the portal's ``routes`` (homeserver names)."""
    default: str
    """The module's fallback URL, or the portal's ``default_homeserver``."""
    server_name: str | None
    """Qualifies a bare localpart (homeserver.yaml's ``server_name``, portal's ``server_name``)."""
    module: ModuleConfig | None = None
    portal: PortalConfig | None = None

    def context(
        self, body: Mapping[str, object], client_ip: str | None, user_id: str | None = None
    ) -> LoginContext:
        """The login context as the module (after Synapse resolved ``user_id``) or the portal
        (from the body alone) builds it at run time."""
        if self.kind == "module":
            response: JsonDict = {"user_id": user_id} if user_id else {}
            return context_for(body, client_ip, response)
        return LoginContext.from_login_body(body, client_ip=client_ip, server_name=self.server_name)

    def select(self, ctx: LoginContext) -> Selection[str]:
        """Where a login with ``ctx`` goes by the rules, else the default (``compute`` is not
        called: it is the admin's own code, tried before the rules at run time)."""
        selection = self.by_server_name(ctx) or self.rules.select(ctx)
        return selection if selection is not None else Selection(self.default, DEFAULT_RULE)

    def by_server_name(self, ctx: LoginContext) -> Selection[str] | None:
        """The portal's step before its routes: a user id naming a homeserver's
        ``server_name`` goes there."""
        if self.portal is None:
            return None
        names = server_names(self.portal.homeservers)
        return select_by_server_name(self.rules, ctx, names)

    def describe(self, target: str) -> str:
        """A target as an operator reads it: a URL, or ``hs2 (https://hs2.example.com)``."""
        if self.portal is not None and target in self.portal.homeservers:
            return f"{target} ({self.portal.homeservers[target].base_url})"
        return target


def load(path: str | Path) -> RoutingConfig:
    """Read ``path``; ``ValueError`` with the same one-line message as at startup if it is
    not a usable homeserver.yaml or portal.yaml."""
    raw = read_yaml(path)
    if isinstance(raw, Mapping) and "homeservers" in raw:
        return _portal(str(path), raw)
    if isinstance(raw, Mapping) and "modules" in raw:
        return _module(str(path), raw)
    raise ValueError(
        f"{path}: neither a portal.yaml (no 'homeservers') nor a homeserver.yaml (no 'modules')"
    )


def _portal(path: str, raw: Mapping[str, object]) -> RoutingConfig:
    config = PortalConfig.from_config(raw)
    return RoutingConfig(
        path=path,
        kind="portal",
        rules=config.routes,
        default=config.default_homeserver,
        server_name=config.server_name,
        portal=config,
    )


def _module(path: str, raw: Mapping[str, object]) -> RoutingConfig:
    modules = raw.get("modules")
    entries = modules if isinstance(modules, list) else []
    found = [
        (i, e)
        for i, e in enumerate(entries)
        if isinstance(e, Mapping) and e.get("module") in MODULE_PATHS
    ]
    if not found:
        raise ValueError(f"{path}: no {MODULE_PATHS[0]} entry under modules:")
    index, entry = found[0]
    try:
        config = ModuleConfig.from_config(entry.get("config"))
    except ValueError as e:
        # As Synapse reports it at startup (BaseCsUrlModule.parse_config).
        raise ValueError(f"modules[{index}].config: synapse_base_cs_url: {e}") from None
    default = config.base_cs_url
    if default is None:
        try:
            default = validate_base_url(raw.get("public_baseurl"))
        except ValueError as e:
            raise ValueError(
                f"base_cs_url is not set and Synapse's public_baseurl cannot be used: {e}"
            ) from None
    server_name = raw.get("server_name")
    return RoutingConfig(
        path=path,
        kind="module",
        rules=config.rules,
        default=default,
        server_name=server_name if isinstance(server_name, str) else None,
        module=config,
    )
