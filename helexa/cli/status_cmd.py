"""`helexa status [--gateway URL] [--api-key-file FILE] [--json] [--watch [S]]`: the fleet.

The rendering is pure (`helexa.cli.status_view`); this module only fetches
`/admin/fleet` (with the API key from --api-key-file, --api-key or
$HELEXA_API_KEY; prefer the file or the variable, since a key on the command
line shows in `ps`) and prints it once, as JSON, or live (`--watch` redraws in
place with rich's Live until Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from helexa.cli import status_view

DEFAULT_GATEWAY = "http://127.0.0.1:31313"
API_KEY_ENV = "HELEXA_API_KEY"
KEY_HINT = f"set ${API_KEY_ENV}, or pass --api-key-file FILE (a file holding the key)"
FETCH_TIMEOUT_S = 10.0


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "status", help="show neurons, devices, models, decisions and the reconcile state"
    )
    p.add_argument(
        "--gateway",
        default=os.environ.get("HELEXA_GATEWAY_URL", DEFAULT_GATEWAY),
        help=f"gateway URL (default: $HELEXA_GATEWAY_URL or {DEFAULT_GATEWAY})",
    )
    key = p.add_mutually_exclusive_group()
    key.add_argument(
        "--api-key-file",
        type=Path,
        metavar="FILE",
        help=f"read the gateway's API key from FILE (or set ${API_KEY_ENV})",
    )
    key.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"the gateway's API key (visible in `ps`: prefer ${API_KEY_ENV} or --api-key-file)",
    )
    p.add_argument("--json", action="store_true", help="print /admin/fleet as JSON")
    p.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) until Ctrl-C",
    )
    p.set_defaults(func=run)


def fetch_fleet(
    gateway: str, api_key: str | None = None, transport: httpx.BaseTransport | None = None
) -> dict[str, Any]:
    """GET /admin/fleet; raises httpx.HTTPError on failure."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(
        base_url=gateway, headers=headers, timeout=FETCH_TIMEOUT_S, transport=transport
    ) as client:
        response = client.get("/admin/fleet")
        response.raise_for_status()
        fleet: dict[str, Any] = response.json()
        return fleet


class ApiKeyUnreadable(Exception):
    """The API key could not be read (named file missing or empty)."""


def resolve_api_key(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The key and where it came from: --api-key-file, --api-key, then $HELEXA_API_KEY."""
    path: Path | None = getattr(args, "api_key_file", None)
    if path is not None:
        try:
            key = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            why = exc.strerror or exc
            raise ApiKeyUnreadable(f"cannot read --api-key-file {path}: {why}") from exc
        if not key:
            raise ApiKeyUnreadable(f"--api-key-file {path} is empty")
        return key, f"--api-key-file {path}"
    if args.api_key:
        return str(args.api_key), "--api-key"
    env_key = os.environ.get(API_KEY_ENV, "").strip()
    if env_key:
        return env_key, f"${API_KEY_ENV}"
    return None, None


def run(
    args: argparse.Namespace,
    transport: httpx.BaseTransport | None = None,
    console: Console | None = None,
) -> int:
    console = console or Console()
    try:
        args.api_key, args.api_key_source = resolve_api_key(args)
    except ApiKeyUnreadable as exc:
        print(f"helexa status: {exc}", file=sys.stderr)
        return 2
    if args.watch:
        return _watch(args, console, transport)
    try:
        fleet = fetch_fleet(args.gateway, args.api_key, transport)
    except httpx.HTTPError as exc:
        print(f"helexa status: {_unreachable(args, exc)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(fleet, indent=2))
    else:
        console.print(status_view.build(fleet, console.width, time.time()))
    return 0


def _watch(
    args: argparse.Namespace, console: Console, transport: httpx.BaseTransport | None
) -> int:
    """Redraw in place; a failed fetch shows the error and retries (the gateway may restart).

    Into a pipe or file (no terminal to redraw on) each frame is printed after the last.
    """
    try:
        if not console.is_terminal:
            while True:
                console.print(_frame(args, console, transport))
                console.file.flush()
                time.sleep(args.watch)
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                live.update(_frame(args, console, transport), refresh=True)
                time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0


def _frame(
    args: argparse.Namespace, console: Console, transport: httpx.BaseTransport | None
) -> RenderableType:
    try:
        fleet = fetch_fleet(args.gateway, args.api_key, transport)
    except httpx.HTTPError as exc:
        return Text(_unreachable(args, exc) + " (retrying)", "red")
    if args.json:
        return Text(json.dumps(fleet, indent=2))
    return status_view.build(fleet, console.width, time.time())


def _unreachable(args: argparse.Namespace, exc: httpx.HTTPError) -> str:
    where = f"cannot read {args.gateway}/admin/fleet"
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in (401, 403):
        source = getattr(args, "api_key_source", None)
        if source is None:
            return f"{where}: the gateway needs an API key; {KEY_HINT}"
        return f"{where}: the gateway refused the API key from {source}; {KEY_HINT}"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"{where}: HTTP {exc.response.status_code} {exc.response.text[:200]}".rstrip()
    return f"{where}: {exc}"
