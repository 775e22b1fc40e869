"""`helexa config check`, `helexa pin`, `helexa unpin`: read and edit the config files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helexa.config.config import (
    FLEET_ENV,
    FLEET_FILE,
    MODELS_ENV,
    MODELS_FILE,
    Config,
    find_config_file,
    fleet_facts,
    load_config,
)
from helexa.config.edit import EditResult, pin_model, unpin_model
from helexa.config.loader import read_toml
from helexa.errors import ConfigErrors

# An edit of models.toml, given its path and the fleet facts to validate against.
ModelsEdit = Callable[[Path, dict[str, set[str]]], EditResult]


def register(sub: Any) -> None:
    config: argparse.ArgumentParser = sub.add_parser(
        "config", help="check fleet.toml and models.toml"
    )
    config.set_defaults(func=lambda _args: _usage(config))
    config_sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    check = config_sub.add_parser("check", help="validate both files; list every error")
    _file_flags(check)
    check.set_defaults(func=_check)

    pin = sub.add_parser("pin", help="keep a model loaded (pin = true in models.toml)")
    pin.add_argument("model", help="model id or alias in models.toml (or a new id with --add)")
    pin.add_argument("--replicas", type=int, help="copies to keep loaded (default: unchanged)")
    pin.add_argument(
        "--add",
        action="store_true",
        help="add the model to models.toml when it is not there (a typo is an error without it)",
    )
    pin.add_argument(
        "--path",
        type=Path,
        metavar="DIR",
        help="with --add: the model's local directory (without it: a Hugging Face hub id)",
    )
    _file_flags(pin)
    pin.set_defaults(func=_pin)

    unpin = sub.add_parser("unpin", help="let a model be evicted again (pin = false)")
    unpin.add_argument("model", help="model id or alias")
    _file_flags(unpin)
    unpin.set_defaults(func=_unpin)


def _file_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", help=f"fleet.toml (default: ${FLEET_ENV}, ./, /etc/helexa/)")
    parser.add_argument("--models", help=f"models.toml (default: ${MODELS_ENV}, ./, /etc/helexa/)")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.fleet, args.models)
    except ConfigErrors as exc:
        _print_errors(exc)
        return 1
    print(_summary(config))
    return 0


def _summary(config: Config) -> str:
    fleet, models = config.fleet, config.models
    local = sum(1 for n in fleet.neurons if n.local)
    foreign = sum(1 for n in fleet.neurons if n.kind == "openai")
    pinned = sum(1 for m in models.models if m.pin)
    lines = [
        f"{config.fleet_path} ({config.fleet_origin}): "
        f"{_count(len(fleet.neurons), 'neuron')} ({local} local, {foreign} openai)",
        f"{config.models_path} ({config.models_origin}): "
        f"{_count(len(models.models), 'model')} ({pinned} pinned), "
        f"{_count(len(models.all_aliases()), 'alias', 'aliases')}",
    ]
    if config.keys.keys and config.keys_path is not None:
        admins = sum(1 for k in config.keys.keys if k.role == "admin")
        lines.append(
            f"{config.keys_path}: {_count(len(config.keys.keys), 'named key')} ({admins} admin)"
        )
    if config.env_overrides:
        lines.append(f"environment overrides: {', '.join(config.env_overrides)}")
    if fleet.gateway.is_open_to_network and not config.keys.keys:
        lines.append(
            f"warning: gateway listens on {fleet.gateway.listen} with no api_keys: "
            "anyone who can reach it can use it"
        )
    lines.append("ok")
    return "\n".join(lines)


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _pin(args: argparse.Namespace) -> int:
    if args.replicas is not None and args.replicas < 1:
        print("error: --replicas must be at least 1", file=sys.stderr)
        return 1
    model_path: Path | None = args.path
    if model_path is not None:
        if not args.add:
            print("error: --path adds a model: give --add with it", file=sys.stderr)
            return 1
        model_path = model_path.expanduser().resolve()
        if not model_path.is_dir():
            print(f"error: --path {args.path}: no such directory", file=sys.stderr)
            return 1
    return _edit(
        args,
        lambda path, context: pin_model(
            path, args.model, args.replicas, context, add=args.add, model_path=model_path
        ),
    )


def _unpin(args: argparse.Namespace) -> int:
    return _edit(args, lambda path, context: unpin_model(path, args.model, context))


def _edit(args: argparse.Namespace, edit: ModelsEdit) -> int:
    try:
        models_file = find_config_file(args.models, MODELS_FILE, MODELS_ENV)
        result = edit(models_file.path, _fleet_context(args.fleet))
    except ConfigErrors as exc:
        _print_errors(exc)
        return 1
    state = "" if result.changed else " (no change)"
    print(f"{result.summary} in {result.path}{state}")
    return 0


def _fleet_context(fleet: str | None) -> dict[str, set[str]]:
    """fleet.toml facts for checking the edit; without a fleet.toml, check models alone."""
    try:
        return fleet_facts(read_toml(find_config_file(fleet, FLEET_FILE, FLEET_ENV).path))
    except ConfigErrors:
        if fleet is not None:
            raise
        return {}


def _print_errors(exc: ConfigErrors) -> None:
    for error in exc.errors:
        print(error, file=sys.stderr)
