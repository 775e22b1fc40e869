"""`helexa plan`: what apply would change.  Exit 0 no changes, 2 changes, 1 error."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from helexa import __version__
from helexa.config import load_config
from helexa.config.config import FLEET_ENV, MODELS_ENV
from helexa.deploy.bootstrap import wheel_version
from helexa.deploy.layout import CONFIG_DIR, PREFIX, STATE_DIR, UNIT_DIR, HostLayout
from helexa.deploy.ssh import DEFAULT_KNOWN_HOSTS
from helexa.errors import ConfigErrors, DeployError
from helexa.reconcile.hosts import HostAccess
from helexa.reconcile.oneshot import OneShot
from helexa.reconcile.plan import Plan
from helexa.reconcile.render import render_json, render_text

EXIT_CLEAN, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "plan", help="show what `helexa apply` would change (exit 0 none, 2 changes, 1 error)"
    )
    add_config_flags(parser)
    add_host_flags(parser)
    parser.add_argument("--json", action="store_true", help="the plan as JSON (docs/operating.md)")
    parser.add_argument("--out", type=Path, help="also save the plan here for `helexa apply FILE`")
    parser.set_defaults(func=run_plan)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", help=f"fleet.toml (default: ${FLEET_ENV}, ./, /etc/helexa/)")
    parser.add_argument("--models", help=f"models.toml (default: ${MODELS_ENV}, ./, /etc/helexa/)")


def add_host_flags(parser: argparse.ArgumentParser) -> None:
    """SSH access to the `[[neurons]]` entries with `ssh` (one layout for all of them)."""
    group = parser.add_argument_group("SSH-managed hosts (docs/deploy.md)")
    group.add_argument("--skip-hosts", action="store_true", help="plan models only, no SSH")
    group.add_argument("--known-hosts", type=Path, default=DEFAULT_KNOWN_HOSTS)
    group.add_argument("--identity", type=Path, help="SSH private key (default: agent, ~/.ssh)")
    group.add_argument("--wheel", type=wheel_file, help="roll this helexa wheel out to pip hosts")
    group.add_argument("--prefix", default=str(PREFIX), help="the venv of install = pip")
    group.add_argument("--config-dir", default=str(CONFIG_DIR))
    group.add_argument("--state-dir", default=str(STATE_DIR))
    group.add_argument("--unit-dir", default=str(UNIT_DIR))
    group.add_argument("--service-user", default="helexa", help="user the neuron runs as")


def wheel_file(value: str) -> Path:
    """A wheel whose file name carries its version (checked while parsing flags)."""
    try:
        wheel_version(Path(value))
    except DeployError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return Path(value).resolve()


def host_access(args: argparse.Namespace) -> HostAccess | None:
    if args.skip_hosts:
        return None
    layout = HostLayout(
        prefix=PurePosixPath(args.prefix),
        config_dir=PurePosixPath(args.config_dir),
        state_dir=PurePosixPath(args.state_dir),
        unit_dir=PurePosixPath(args.unit_dir),
        user=args.service_user,
    )
    wheel: Path | None = args.wheel
    return HostAccess(
        known_hosts=args.known_hosts,
        identity=args.identity,
        layout=layout,
        version=wheel_version(wheel) if wheel else __version__,
        wheel=wheel,
    )


def exit_code(plan: Plan) -> int:
    if plan.errors:
        return EXIT_ERROR
    return EXIT_CHANGES if plan.has_changes else EXIT_CLEAN


def run_plan(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.fleet, args.models)
    except ConfigErrors as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR

    async def make() -> Plan:
        async with OneShot(config, hosts=host_access(args)) as run:
            return await run.plan()

    plan = asyncio.run(make())
    sys.stdout.write(render_json(plan) if args.json else render_text(plan))
    if args.out is not None:
        args.out.write_text(render_json(plan), encoding="utf-8")
        # stderr, so `--json --out` keeps stdout a JSON document.
        print(f"Saved the plan to {args.out}: `helexa apply {args.out}` runs it.", file=sys.stderr)
    return exit_code(plan)
