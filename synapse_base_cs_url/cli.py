"""The ``synapse-base-cs-url`` command: ``portal``, ``generate-key``, ``explain``, ``diff``,
``check``, ``demo``."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
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
        "--check",
        action="store_true",
        help="validate the config file and check each admin token and placement secret at "
        "its homeserver (as startup does), then exit",
    )
    portal.add_argument(
        "--offline",
        action="store_true",
        help="with --check: the file only, no homeserver asked (where they cannot be reached)",
    )
    key = commands.add_parser(
        "generate-key",
        help="write a new SSO callback signing key (sso.signing_key_file) to FILE",
        description="Write 32 random bytes to FILE (mode 0600), for sso.signing_key_file. "
        "Every portal process must read the same file.",
    )
    key.add_argument("file", metavar="FILE")
    key.add_argument("--force", action="store_true", help="replace FILE if it exists")
    from synapse_base_cs_url.tools.commands import add_parsers

    add_parsers(commands)
    return parser


def run_portal_command(config_path: str, *, check_only: bool = False, offline: bool = False) -> int:
    """Load the config (reporting mistakes by key, without a traceback) and serve."""
    from synapse_base_cs_url.portal.config.portal_config import PortalConfig
    from synapse_base_cs_url.portal.logs import FORMAT

    # What reading the config warns about is logged as the portal logs (the serving process
    # replaces this handler with its own once it starts).
    logging.basicConfig(format=FORMAT, stream=sys.stderr, level=logging.INFO)
    try:
        config = PortalConfig.load(config_path)
    except ValueError as e:
        print(f"synapse-base-cs-url portal: invalid config {config_path}: {e}", file=sys.stderr)
        return 2
    if check_only:
        from synapse_base_cs_url.tools.commands import check_portal_secrets

        if not offline and not check_portal_secrets(config, sys.stderr):
            print(f"{config_path}: a homeserver refuses its token or secret", file=sys.stderr)
            return 1
        print(f"{config_path}: OK", file=sys.stderr)
        return 0
    from synapse_base_cs_url.portal.workers import (
        inherited_listen_fd,
        inherited_metrics_fd,
        run_parent,
    )

    listen_fd = inherited_listen_fd()
    if config.workers > 1 and listen_fd is None:
        return run_parent(config_path, config)
    from synapse_base_cs_url.portal.process import run_portal

    return run_portal(config, config_path, listen_fd=listen_fd, metrics_fd=inherited_metrics_fd())


def generate_key(path: str, *, force: bool = False) -> int:
    """Write a new signing key: 32 random bytes, readable by its owner only. The file is
    written whole under another name first and then renamed, so a portal reading it never
    sees a partial key."""
    import secrets
    import tempfile

    from synapse_base_cs_url.portal.config.sso import MIN_SIGNING_KEY_BYTES

    target = os.path.abspath(path)
    if os.path.lexists(target) and not force:
        print(
            f"synapse-base-cs-url generate-key: {path} exists. To rotate keys, write the new "
            "key to another file, make it sso.signing_key_file and list this one in "
            "sso.previous_signing_key_files; --force replaces it (callbacks signed with the "
            "old key are then refused)",
            file=sys.stderr,
        )
        return 2
    try:
        fd, temporary = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".signing-key-")
    except OSError as e:
        print(
            f"synapse-base-cs-url generate-key: cannot write {path}: {e.strerror}",
            file=sys.stderr,
        )
        return 2
    try:
        with os.fdopen(fd, "wb") as f:  # mkstemp: mode 0600 already
            f.write(secrets.token_bytes(MIN_SIGNING_KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except OSError as e:
        os.unlink(temporary)
        print(f"synapse-base-cs-url generate-key: cannot write {path}: {e}", file=sys.stderr)
        return 2
    print(f"wrote a new signing key to {path} (mode 0600)", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        if importlib.util.find_spec("synapse") is None:
            sys.exit(
                "synapse-base-cs-url demo runs real Synapse homeservers: install them with "
                'pip install "synapse-base-cs-url[synapse]"'
            )
        from synapse_base_cs_url._dev.demo import run_demo

        if args.portal:
            from synapse_base_cs_url._dev.demo_portal import run_portal_demo

            sys.exit(run_portal_demo(keep=args.keep))
        sys.exit(run_demo(keep=args.keep))
    if args.command == "portal":
        sys.exit(run_portal_command(args.config, check_only=args.check, offline=args.offline))
    if args.command == "generate-key":
        sys.exit(generate_key(args.file, force=args.force))
    from synapse_base_cs_url.tools.commands import run

    sys.exit(run(args))
