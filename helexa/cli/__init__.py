"""`helexa ...`: one argparse tree; each command lives in its own module.

A command module exposes `register(subparsers)`, which adds its parsers and
sets `func` (a callable taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from helexa import __version__

# Order is the order shown in --help.
COMMAND_MODULES = (
    "helexa.cli.serve_cmd",
    "helexa.cli.neuron_cmd",
    "helexa.cli.status_cmd",
    "helexa.cli.config_cmd",
    "helexa.cli.plan_cmd",
    "helexa.cli.apply_cmd",
    "helexa.cli.bootstrap_cmd",
    "helexa.cli.keys_cmd",
    "helexa.cli.usage_cmd",
)


def _version(_: argparse.Namespace) -> int:
    print(f"helexa {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="helexa",
        description="Run open-weight LLMs across your own GPU hosts behind one endpoint.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    p = sub.add_parser("version", help="print the helexa version")
    p.set_defaults(func=_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    code: int = func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
