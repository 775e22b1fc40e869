"""`helexa apply [PLANFILE]`: show the plan, ask, run it; exit 0 converged, 1 otherwise.

A saved plan (from `helexa plan --out`) is refused when models.toml/fleet.toml or
the fleet moved since it was made: its fingerprints must match the current ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from helexa.cli.plan_cmd import add_config_flags, add_host_flags, host_access
from helexa.config import Config, load_config
from helexa.errors import ConfigErrors, PlanFileError
from helexa.reconcile.apply import Applier
from helexa.reconcile.hosts import HostAccess
from helexa.reconcile.lock import LockHeld, WriterLock, lock_path_for
from helexa.reconcile.oneshot import OneShot
from helexa.reconcile.plan import Plan
from helexa.reconcile.render import render_text
from helexa.reconcile.report import ProgressEvent

EXIT_OK, EXIT_FAILED = 0, 1


class StalePlan(Exception):
    """A saved plan made against another desired or observed state."""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "apply", help="make the fleet match models.toml (asks first unless --yes)"
    )
    parser.add_argument("planfile", nargs="?", type=Path, help="a plan saved by `plan --out`")
    add_config_flags(parser)
    add_host_flags(parser)
    parser.add_argument("--yes", action="store_true", help="do not ask before applying")
    parser.set_defaults(func=run_apply)


def run_apply(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.fleet, args.models)
        saved = _read_plan(args.planfile) if args.planfile else None
    except (ConfigErrors, PlanFileError, OSError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    try:
        with WriterLock(lock_path_for(config.models_path), "apply") as lock:
            if lock.stale is not None:
                print(f"Note: took over a stale lock left by {lock.stale.describe()}.")
            return asyncio.run(_apply(config, saved, args.yes, host_access(args)))
    except LockHeld as exc:
        print(f"Refusing to apply: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _read_plan(path: Path) -> Plan:
    try:
        return Plan.from_json(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as exc:
        raise PlanFileError(f"{path}: not JSON ({exc})") from exc


async def _apply(
    config: Config, saved: Plan | None, assume_yes: bool, hosts: HostAccess | None
) -> int:
    async with OneShot(config, hosts=hosts) as run:
        fresh = await run.plan()
        try:
            plan = _check_saved(saved, fresh) if saved is not None else fresh
        except StalePlan as exc:
            print(f"Refusing the saved plan: {exc}", file=sys.stderr)
            return EXIT_FAILED
        sys.stdout.write(render_text(plan))
        if plan.errors:
            print("Nothing was applied: fix the errors above first.", file=sys.stderr)
            return EXIT_FAILED
        if not plan.has_changes:
            return EXIT_OK
        if not assume_yes and not _confirmed(len(plan.steps)):
            print("Apply cancelled.")
            return EXIT_FAILED
        print()
        applier = Applier(
            run.desired, run.poller, run.client, progress=_print_progress, hosts=run.hosts
        )
        report = await applier.apply(plan)
        print()
        sys.stdout.write(report.render())
        return EXIT_OK if report.ok else EXIT_FAILED


def _check_saved(saved: Plan, fresh: Plan) -> Plan:
    if saved.generation != fresh.generation:
        raise StalePlan(
            "fleet.toml or models.toml changed since it was made "
            f"(generation {saved.generation[:12]} -> {fresh.generation[:12]}); "
            "run `helexa plan` again"
        )
    if saved.observed != fresh.observed:
        raise StalePlan(
            "the fleet changed since it was made "
            f"(observed {saved.observed[:12]} -> {fresh.observed[:12]}); run `helexa plan` again"
        )
    return saved


def _confirmed(count: int) -> bool:
    noun = "action" if count == 1 else "actions"
    try:
        answer = input(f"\nApply these {count} {noun}? Only 'yes' is accepted: ")
    except (EOFError, OSError):  # no terminal to ask on: never assume consent
        return False
    return answer.strip() == "yes"


def _print_progress(event: ProgressEvent) -> None:
    print(event.line(), flush=True)
