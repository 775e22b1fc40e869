"""`helexa plan`: what apply would change.  Exit 0 no changes, 2 changes, 1 error."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from helexa.config import load_config
from helexa.config.config import FLEET_ENV, MODELS_ENV
from helexa.errors import ConfigErrors
from helexa.reconcile.oneshot import OneShot
from helexa.reconcile.plan import Plan
from helexa.reconcile.render import render_json, render_text

EXIT_CLEAN, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "plan", help="show what `helexa apply` would change (exit 0 none, 2 changes, 1 error)"
    )
    add_config_flags(parser)
    parser.add_argument("--json", action="store_true", help="the plan as JSON (docs/operating.md)")
    parser.add_argument("--out", type=Path, help="also save the plan here for `helexa apply FILE`")
    parser.set_defaults(func=run_plan)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", help=f"fleet.toml (default: ${FLEET_ENV}, ./, /etc/helexa/)")
    parser.add_argument("--models", help=f"models.toml (default: ${MODELS_ENV}, ./, /etc/helexa/)")


def exit_code(plan: Plan) -> int:
    if plan.errors:
        return EXIT_ERROR
    return EXIT_CHANGES if plan.actions else EXIT_CLEAN


def run_plan(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.fleet, args.models)
    except ConfigErrors as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR

    async def make() -> Plan:
        async with OneShot(config) as run:
            return await run.plan()

    plan = asyncio.run(make())
    sys.stdout.write(render_json(plan) if args.json else render_text(plan))
    if args.out is not None:
        args.out.write_text(render_json(plan), encoding="utf-8")
        # stderr, so `--json --out` keeps stdout a JSON document.
        print(f"Saved the plan to {args.out}: `helexa apply {args.out}` runs it.", file=sys.stderr)
    return exit_code(plan)
