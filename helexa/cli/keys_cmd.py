"""`helexa keys add|list|revoke`: named API keys in keys.toml (hashes only).

`add` prints the new key once and writes only its SHA-256; a running
gateway picks the saved file up within the reconcile debounce.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from helexa.config.config import FLEET_ENV, FLEET_FILE, find_config_file, keys_file_path, load_keys
from helexa.config.fleet import FleetConfig
from helexa.config.keys import KeyEntry, KeysConfig, hash_key, new_key
from helexa.config.keys_edit import add_key, revoke_key
from helexa.config.loader import load_toml
from helexa.errors import ConfigErrors


def register(sub: Any) -> None:
    keys: argparse.ArgumentParser = sub.add_parser(
        "keys", help="named API keys: add, list, revoke (keys.toml)"
    )
    keys.set_defaults(func=lambda _args: _print_help(keys))
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")

    add = keys_sub.add_parser("add", help="create a key: prints it once, stores its hash")
    add.add_argument("name", help="the key's name (shown in metrics and usage)")
    add.add_argument("--models", nargs="+", metavar="GLOB", help="model ids it may use (globs)")
    add.add_argument("--role", choices=("user", "admin"), help="admin reaches /admin/* writes")
    add.add_argument("--rpm", type=int, help="requests per minute")
    add.add_argument("--tpm", type=int, help="tokens per minute (input + output)")
    add.add_argument("--max-concurrent", type=int, help="requests in flight at once")
    add.add_argument("--priority", type=int, help="served first when the fleet is saturated")
    add.add_argument("--expires", type=_when, help="YYYY-MM-DD or an ISO date-time (UTC)")
    _file_flags(add)
    add.set_defaults(func=_add)

    listing = keys_sub.add_parser("list", help="the keys, their roles and limits")
    _file_flags(listing)
    listing.set_defaults(func=_list)

    revoke = keys_sub.add_parser("revoke", help="remove a key (a running gateway drops it)")
    revoke.add_argument("name")
    _file_flags(revoke)
    revoke.set_defaults(func=_revoke)


def _file_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", help=f"fleet.toml (default: ${FLEET_ENV}, ./, /etc/helexa/)")
    parser.add_argument(
        "--keys",
        help="the keys file (default: [gateway] keys_file, else keys.toml next to fleet.toml)",
    )


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _when(text: str) -> date | datetime:
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or ISO date-time: {text!r}") from None


def keys_path(args: argparse.Namespace) -> Path:
    if args.keys:
        return Path(args.keys).absolute()
    fleet = find_config_file(args.fleet, FLEET_FILE, FLEET_ENV)
    return keys_file_path(load_toml(fleet.path, FleetConfig), fleet.path)


def _add(args: argparse.Namespace) -> int:
    key = new_key()
    values: dict[str, Any] = {"name": args.name, "sha256": hash_key(key)}
    optional = {
        "models": args.models,
        "role": args.role,
        "requests_per_minute": args.rpm,
        "tokens_per_minute": args.tpm,
        "max_concurrent": args.max_concurrent,
        "priority": args.priority,
        "expires": args.expires,
    }
    values |= {name: value for name, value in optional.items() if value is not None}
    try:
        result = add_key(keys_path(args), values)
    except ConfigErrors as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{result.summary} to {result.path}", file=sys.stderr)
    print("the key (shown only now; only its hash is stored):", file=sys.stderr)
    print(key)
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        path = keys_path(args)
        config = load_keys(path, FleetConfig()) if path.exists() else KeysConfig()
    except ConfigErrors as exc:
        print(exc, file=sys.stderr)
        return 1
    if not config.keys:
        print(f"no keys in {path}")
        return 0
    print(render_keys(config.keys))
    return 0


def render_keys(keys: list[KeyEntry]) -> str:
    """One row per key; a limit that is not set shows as '-'."""
    header = ("NAME", "ROLE", "MODELS", "RPM", "TPM", "CONC", "PRIO", "EXPIRES", "SHA256")
    rows = [header] + [
        (
            k.name,
            k.role,
            ",".join(k.models),
            _cell(k.requests_per_minute),
            _cell(k.tokens_per_minute),
            _cell(k.max_concurrent),
            str(k.priority),
            _cell(k.expires),
            k.sha256[:12],
        )
        for k in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _revoke(args: argparse.Namespace) -> int:
    try:
        result = revoke_key(keys_path(args), args.name)
    except ConfigErrors as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{result.summary} in {result.path}")
    return 0
