"""``synapse-base-cs-url explain``: where a login goes, which rule chose it, and why each rule
before it did not fire."""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator

from synapse_base_cs_url.core import JsonDict, LoginContext
from synapse_base_cs_url.core.context import localpart_of
from synapse_base_cs_url.core.explain import Explanation, RuleTrace, explain
from synapse_base_cs_url.core.login_types import TOKEN_TYPE
from synapse_base_cs_url.core.matchers import Matcher
from synapse_base_cs_url.core.pools import Strategy
from synapse_base_cs_url.portal.config.login import Mode
from synapse_base_cs_url.portal.directory.directory import Location
from synapse_base_cs_url.portal.directory.identifier import Identifier
from synapse_base_cs_url.portal.login.mode import choose_mode
from synapse_base_cs_url.portal.login_routes import (
    SERVER_NAME_ROUTE,
    SSO_DEFAULT_ROUTE,
    LoginRoutes,
)
from synapse_base_cs_url.tools.configs import RoutingConfig

_PHONE = re.compile(r"\+?[0-9][0-9 ()-]{4,}")


def login_body(who: str, login_type: str) -> JsonDict:
    """The ``/login`` body a client would send for ``who``: a user id, a bare localpart, an
    e-mail address or a phone number (international, digits only once normalised)."""
    if who.startswith("@") or ("@" not in who and not _PHONE.fullmatch(who)):
        identifier: JsonDict = {"type": "m.id.user", "user": who}
    elif "@" in who:
        identifier = {"type": "m.id.thirdparty", "medium": "email", "address": who}
    else:
        digits = re.sub(r"[^0-9]", "", who)
        identifier = {"type": "m.id.thirdparty", "medium": "msisdn", "address": digits}
    return {"type": login_type, "identifier": identifier}


def canonical_user_id(config: RoutingConfig, body: JsonDict) -> str | None:
    """The user id Synapse would resolve this login to, as far as the file tells: a full id
    as given, a bare localpart on ``server_name``; a third-party id needs Synapse."""
    identifier = body.get("identifier")
    user = identifier.get("user") if isinstance(identifier, dict) else body.get("user")
    if not isinstance(user, str) or not user:
        return None
    if user.startswith("@"):
        return user if localpart_of(user) else None
    return f"@{user}:{config.server_name}" if config.server_name else None


def explain_login(
    config: RoutingConfig,
    body: JsonDict,
    *,
    client_ip: str | None,
    user_agent: str | None = None,
    located: Location | None = None,
) -> Iterator[str]:
    """``located``: what the account directory answered for this login, when it was asked
    (``--ask-directory``)."""
    """The lines ``explain`` prints for one login."""
    user_id = canonical_user_id(config, body) if config.kind == "module" else None
    ctx = config.context(body, client_ip, user_id)
    login_type = body.get("type")
    who = ctx.user_id or ctx.address or ctx.localpart or "(no user in the body)"
    yield (
        f"{who}  [{login_type}, client IP {client_ip or 'not given'}; "
        f"{config.kind} config {config.path}]"
    )
    if config.kind == "module" and user_id is None:
        yield (
            "  (the module routes on the user id Synapse resolves at login, which the file "
            "cannot tell for this login: explain the user id itself to be sure)"
        )
    if config.kind == "portal" and login_type == TOKEN_TYPE:
        yield from _token_login(config)
        return
    if config.module is not None and config.module.compute is not None:
        yield (
            f"  compute {config.module.compute.path} is asked first at run time (explain does "
            "not call it); when it returns nothing, the rules below decide"
        )
    by_name = config.by_server_name(ctx)
    if by_name is not None and by_name.rule_name == SERVER_NAME_ROUTE:
        server = (ctx.user_id or "").partition(":")[2]
        yield f"  -> {config.describe(by_name.target)}{_mode(config, user_agent)}"
        yield f"  chosen by: its server name {server!r} (homeservers.{by_name.target}.server_name)"
        return
    if config.portal is not None and config.portal.directory.enabled:
        identifier = LoginRoutes(config.portal).to_locate(body, str(login_type))
        if identifier is not None:
            done = yield from _directory_lines(config, identifier, located, user_agent)
            if done:
                return
    found = explain(config.rules, ctx)
    selection = found.selection or config.select(ctx)
    yield f"  -> {config.describe(selection.target)}{_mode(config, user_agent)}"
    if found.selection is None:
        yield f"  chosen by: the default ({'no rules' if not found.tried else 'no rule fired'})"
    else:
        yield f"  chosen by: rule {found.selection.rule_name!r}"
        yield from _pool_lines(config, found)
    before = [t for t in found.tried if not t.fired]
    if before:
        yield "  rules before it that did not fire:"
        for trace in before:
            yield from _not_fired(trace, ctx)


def _directory_lines(
    config: RoutingConfig,
    identifier: Identifier,
    located: Location | None,
    user_agent: str | None,
) -> Generator[str, None, bool]:
    """What the directory step says; ``True`` when it decided (the routes are not used)."""
    assert config.portal is not None
    sources = ", ".join(source.value for source in config.portal.directory.sources)
    if located is None:
        yield (
            f"  the account directory is asked first ({sources}): an existing account goes "
            "where it lives; the routes below only place a name nobody holds "
            "(--ask-directory asks it now)"
        )
        return False
    holders = sorted(located.holders)
    if len(holders) == 1:
        yield f"  -> {config.describe(holders[0])}{_mode(config, user_agent)}"
        yield f"  chosen by: the account directory ({located.source}): the account lives there"
        return True
    if holders:
        yield f"  -> nowhere: accounts by this name live on {', '.join(holders)}"
        yield "  the portal answers 400 M_INVALID_PARAM: log in with the full Matrix ID"
        return True
    if not located.complete:
        yield "  -> nowhere now: a directory source did not answer (the portal answers 503)"
        return True
    yield f"  the account directory ({sources}) found nobody: the routes place it"
    return False


def _token_login(config: RoutingConfig) -> Iterator[str]:
    assert config.portal is not None
    sso = config.portal.sso
    yield (
        "  -> the homeserver that issued the login token, as the portal's SSO callback "
        f"recorded it; a token the portal did not see goes to sso.default "
        f"({config.describe(sso.default)}, route {SSO_DEFAULT_ROUTE!r})"
    )


def _mode(config: RoutingConfig, user_agent: str | None) -> str:
    if config.portal is None:
        return ""
    portal = config.portal
    if portal.mode is Mode.AUTO and user_agent is None:
        agents = ", ".join(p.pattern for p in portal.proxy_user_agents) or "none"
        return f", mode auto (proxy for User-Agents matching {agents}; redirect otherwise)"
    mode = choose_mode(portal.mode, user_agent, portal.proxy_user_agents)
    return f", mode {mode.value}"


def _pool_lines(config: RoutingConfig, found: Explanation[str]) -> Iterator[str]:
    pool = found.pool
    if pool is None or found.selection is None:
        return
    if pool.key is None:
        why = "" if pool.strategy is Strategy.ROUND_ROBIN else " (nothing to key on)"
        yield f"  pool, round robin{why}: each login takes the next member"
        return
    yield f"  pool, strategy hash on {pool.key!r}: the highest score wins"
    for member, score in pool.scores:
        mark = "*" if member == found.selection.target else " "
        yield f"    {mark} {score}  {config.describe(member)}"


def _not_fired(trace: RuleTrace[str], ctx: LoginContext) -> Iterator[str]:
    for matcher in trace.failing:
        yield f"    {trace.rule.name}: {_why_not(matcher, ctx)}"


def _why_not(matcher: Matcher, ctx: LoginContext) -> str:
    value = matcher.fact(ctx)
    if value is None:
        hint = " (give --client-ip)" if matcher.key == "client_ip" else ""
        return f"{matcher.key} is unknown{hint}; the rule wants {matcher.describe()}"
    return f"{matcher.key} is {value!r}; the rule wants {matcher.describe()}"


def parse_body(text: str) -> JsonDict:
    """``--body``: a whole login body as JSON."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"--body: not JSON: {e}") from None
    if not isinstance(body, dict):
        raise ValueError("--body: must be a JSON object (a /login body)")
    return body
