"""Running the ``synapse-base-cs-url`` command in-process, with its output captured."""

from __future__ import annotations

import io

import attr

from synapse_base_cs_url.cli import build_parser
from synapse_base_cs_url.tools.commands import run


@attr.s(auto_attribs=True, frozen=True)
class Ran:
    status: int
    out: str
    err: str


def run_tool(*argv: str) -> Ran:
    """``synapse-base-cs-url explain|diff|check ...``: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    status = run(build_parser().parse_args(list(argv)), out, err)
    return Ran(status, out.getvalue(), err.getvalue())
