"""The tools' command lines: arguments in, lines out, exit status (0 only when all is well)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from synapse_base_cs_url.core.login_types import PASSWORD_TYPE
from synapse_base_cs_url.portal.config.portal_config import PortalConfig
from synapse_base_cs_url.portal.directory.directory import Location
from synapse_base_cs_url.portal.login_routes import LoginRoutes
from synapse_base_cs_url.tools import configs
from synapse_base_cs_url.tools.check import Checker
from synapse_base_cs_url.tools.diff import Move, Router, diff, report
from synapse_base_cs_url.tools.directory_lookup import look_up
from synapse_base_cs_url.tools.explain import explain_login, login_body, parse_body
from synapse_base_cs_url.tools.forget import forget


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = commands.add_parser(
        "explain",
        help="show where a login goes, which rule chose it, and why the rules before did not",
        description="Route logins with a homeserver.yaml (this module's entry) or a "
        "portal.yaml, exactly as at run time, and explain the result.",
    )
    explain.add_argument("--config", "-c", required=True, metavar="FILE")
    explain.add_argument(
        "who",
        nargs="*",
        metavar="WHO",
        help="a user id, a bare localpart, an e-mail address or a phone number",
    )
    explain.add_argument("--body", metavar="JSON", help="a whole /login body instead of WHO")
    explain.add_argument("--client-ip", metavar="IP", help="the client's address")
    explain.add_argument("--login-type", default=PASSWORD_TYPE, metavar="TYPE")
    explain.add_argument("--user-agent", metavar="UA", help="for a portal in auto mode")
    explain.add_argument(
        "--ask-directory",
        action="store_true",
        help="a portal.yaml with an account directory: ask it now, with the config's tokens",
    )

    directory = commands.add_parser(
        "directory",
        help="act on a portal's account directory (forget a cached answer)",
        description="Act on the account directory of the portal configured by portal.yaml.",
    )
    actions = directory.add_subparsers(dest="directory_command", metavar="ACTION", required=True)
    forget_cmd = actions.add_parser(
        "forget",
        help="drop the cached answer for each WHO, for every replica (state.backend: redis)",
        description="Drop the account directory's cached answer for each WHO (as explain "
        "takes it), in the shared state every portal replica reads: their next login is "
        "looked up again.",
    )
    forget_cmd.add_argument("--config", "-c", required=True, metavar="PORTAL_YAML")
    forget_cmd.add_argument(
        "who",
        nargs="+",
        metavar="WHO",
        help="a bare localpart, an e-mail address or a phone number",
    )

    diff_cmd = commands.add_parser(
        "diff",
        help="show how many users each target gets under two configs, and who moves",
        description="Route every user id in FILE with the OLD and the NEW config.",
    )
    diff_cmd.add_argument(
        "--config",
        "-c",
        action="append",
        required=True,
        metavar="FILE",
        dest="configs",
        help="give it twice: the old config, then the new one",
    )
    diff_cmd.add_argument(
        "--users", required=True, metavar="FILE", help="one user id per line, or - for stdin"
    )
    diff_cmd.add_argument("--login-type", default=PASSWORD_TYPE, metavar="TYPE")
    diff_cmd.add_argument("--client-ip", metavar="IP")
    diff_cmd.add_argument("--show", type=int, default=20, metavar="N", help="moves to print")
    diff_cmd.add_argument("--moves", metavar="FILE", help="write every move here (TSV)")

    check = commands.add_parser(
        "check",
        help="check a live deployment (portal or homeserver) from a client's point of view",
        description="Check URL as a client would: TLS, discovery, login flows, CORS; with "
        "--user where the portal sends that user; with a password a real login, checked "
        "and logged out again.",
    )
    check.add_argument("url", metavar="URL")
    check.add_argument(
        "--user",
        metavar="WHO",
        help="where the portal sends this user: a user id, a bare localpart, an e-mail address "
        "or a phone number (as explain takes them)",
    )
    check.add_argument(
        "--password-env",
        metavar="VAR",
        help="the environment variable holding --user's password (never an argument)",
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    check.add_argument("--ca-file", metavar="PEM", help="trust this CA too (private CAs)")
    check.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="the portal.yaml: also check each homeserver's admin_token_file and "
        "placement_secret_file",
    )


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    if args.command == "explain":
        return _explain(args, out, err)
    if args.command == "diff":
        return _diff(args, out, err)
    if args.command == "directory":
        return _forget(args, out, err)
    return _check(args, out, err)


def _load(path: str, command: str, err: TextIO) -> configs.RoutingConfig | None:
    try:
        return configs.load(path)
    except ValueError as e:
        print(f"synapse-base-cs-url {command}: invalid config {path}: {e}", file=err)
        return None


def _explain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    config = _load(args.config, "explain", err)
    if config is None:
        return 2
    try:
        bodies = [parse_body(args.body)] if args.body else []
    except ValueError as e:
        print(f"synapse-base-cs-url explain: {e}", file=err)
        return 2
    bodies += [login_body(who, args.login_type) for who in args.who]
    if not bodies:
        print("synapse-base-cs-url explain: give at least one WHO, or --body", file=err)
        return 2
    located: list[Location | None] = [None] * len(bodies)
    if args.ask_directory:
        portal = config.portal
        if portal is None or not portal.directory.enabled:
            print(
                "synapse-base-cs-url explain: --ask-directory needs a portal.yaml with an "
                "account directory",
                file=err,
            )
            return 2
        routes = LoginRoutes(portal)
        asked = [(i, routes.to_locate(b, str(b.get("type")))) for i, b in enumerate(bodies)]
        wanted = [(i, ident) for i, ident in asked if ident is not None]
        answers = look_up(portal, [ident for _, ident in wanted])
        for (i, _), answer in zip(wanted, answers, strict=True):
            located[i] = answer
    for index, body in enumerate(bodies):
        if index:
            print(file=out)
        for line in explain_login(
            config,
            body,
            client_ip=args.client_ip,
            user_agent=args.user_agent,
            located=located[index],
        ):
            print(line, file=out)
    return 0


def _diff(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if len(args.configs) != 2:
        print("synapse-base-cs-url diff: give --config twice: OLD, then NEW", file=err)
        return 2
    old, new = (_load(path, "diff", err) for path in args.configs)
    if old is None or new is None:
        return 2
    if old.kind != new.kind:
        print(
            f"synapse-base-cs-url diff: {old.path} is a {old.kind} config but {new.path} "
            f"is a {new.kind} config: compare like with like",
            file=err,
        )
        return 2
    routers = (
        Router(old, args.login_type, args.client_ip),
        Router(new, args.login_type, args.client_ip),
    )
    moves: list[Move] = []
    try:
        if args.users == "-":
            result = diff(*routers, sys.stdin, moves)
        else:
            with Path(args.users).open(encoding="utf-8") as users:
                result = diff(*routers, users, moves)
    except OSError as e:
        print(f"synapse-base-cs-url diff: cannot read {args.users}: {e.strerror}", file=err)
        return 2
    for line in report(result, old, new, moves, args.show):
        print(line, file=out)
    if args.moves:
        with Path(args.moves).open("w", encoding="utf-8") as f:
            for move in moves:
                f.write(f"{move.user_id}\t{move.before}\t{move.after}\n")
    return 0


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    password = None
    if args.password_env:
        if args.user is None:
            print("synapse-base-cs-url check: --password-env needs --user", file=err)
            return 2
        password = os.environ.get(args.password_env)
        if not password:
            print(
                f"synapse-base-cs-url check: the environment variable {args.password_env} "
                "is not set",
                file=err,
            )
            return 2
    tokens: list[tuple[str, str, str]] = []
    secrets: list[tuple[str, str, str]] = []
    if args.config:
        try:
            portal = PortalConfig.load(args.config)
        except ValueError as e:
            print(f"synapse-base-cs-url check: {args.config}: {e}", file=err)
            return 2
        tokens, secrets = portal_secrets(portal)
    checker = Checker(
        args.url,
        user=args.user,
        password=password,
        timeout=args.timeout,
        ca_file=args.ca_file,
        admin_tokens=tokens,
        placement_secrets=secrets,
    )
    results = checker.run()
    failed = any(r.status == "fail" for r in results)
    if args.json:
        document = {"url": args.url, "ok": not failed, "checks": [r.as_json() for r in results]}
        print(json.dumps(document, indent=2), file=out)
    else:
        for result in results:
            print(result.line(), file=out)
    return 1 if failed else 0


def portal_secrets(
    portal: PortalConfig,
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """Each homeserver's admin token and placement secret, with where the portal uses them
    (``proxy_url``, ``base_url`` unless set): an admin token must not travel to the public
    address, which may be another host."""
    homeservers = portal.homeservers.values()
    tokens = [(hs.name, hs.proxy_url, hs.admin_token) for hs in homeservers if hs.admin_token]
    secrets = [
        (hs.name, hs.proxy_url, hs.placement_secret) for hs in homeservers if hs.placement_secret
    ]
    return tokens, secrets


def check_portal_secrets(portal: PortalConfig, err: TextIO) -> bool:
    """``portal --check``: every admin token and placement secret asked at its homeserver,
    one line each on ``err``; whether none was refused (a homeserver that does not answer
    is a warning, as at startup)."""
    tokens, secrets = portal_secrets(portal)
    results = list(Checker("", admin_tokens=tokens, placement_secrets=secrets).secret_checks())
    for result in results:
        print(result.line(), file=err)
    return not any(r.status == "fail" for r in results)


def _forget(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        portal = PortalConfig.load(args.config)
    except ValueError as e:
        print(f"synapse-base-cs-url directory: invalid config {args.config}: {e}", file=err)
        return 2
    return forget(portal, args.who, out, err)
