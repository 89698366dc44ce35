"""The ``synapse-base-cs-url`` command: ``portal``, ``explain``, ``diff``, ``check``, ``demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synapse-base-cs-url",
        description="MSC1730 for Synapse: base_cs_url in login responses, and a login portal.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="start a throwaway Synapse with the module, log in, show the login response",
    )
    demo.add_argument(
        "--keep", action="store_true", help="keep the Synapse work directory for inspection"
    )
    demo.add_argument(
        "--portal",
        action="store_true",
        help="two homeservers behind the login portal: a redirected and a proxied login",
    )
    portal = commands.add_parser(
        "portal",
        help="run the MSC1730 login portal (see docs/portal.md)",
        description="Route each login to the user's homeserver, by 307 redirect or by proxy.",
    )
    portal.add_argument("--config", "-c", required=True, metavar="PORTAL_YAML")
    portal.add_argument(
        "--check", action="store_true", help="only validate the config file, then exit"
    )
    from synapse_base_cs_url.tools.commands import add_parsers

    add_parsers(commands)
    return parser


def run_portal_command(config_path: str, *, check_only: bool = False) -> int:
    """Load the config (reporting mistakes by key, without a traceback) and serve."""
    from synapse_base_cs_url.portal.config import PortalConfig

    try:
        config = PortalConfig.load(config_path)
    except ValueError as e:
        print(f"synapse-base-cs-url portal: invalid config {config_path}: {e}", file=sys.stderr)
        return 2
    if check_only:
        print(f"{config_path}: OK", file=sys.stderr)
        return 0
    from synapse_base_cs_url.portal.app import run_portal

    return run_portal(config)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from synapse_base_cs_url._dev.demo import run_demo

        if args.portal:
            from synapse_base_cs_url._dev.demo_portal import run_portal_demo

            sys.exit(run_portal_demo(keep=args.keep))
        sys.exit(run_demo(keep=args.keep))
    if args.command == "portal":
        sys.exit(run_portal_command(args.config, check_only=args.check))
    from synapse_base_cs_url.tools.commands import run

    sys.exit(run(args))
