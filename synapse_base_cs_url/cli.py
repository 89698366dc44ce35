"""The ``synapse-base-cs-url`` command: ``demo`` (and the portal, once configured)."""

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
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from synapse_base_cs_url.demo import run_demo

        sys.exit(run_demo(keep=args.keep))
