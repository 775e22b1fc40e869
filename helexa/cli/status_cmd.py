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
import sys
import time
from typing import Any

import httpx
from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from helexa.cli import status_view
from helexa.cli.gateway_args import (
    FETCH_TIMEOUT_S,
    ApiKeyUnreadable,
    add_gateway_arguments,
    refusal,
    resolve_api_key,
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "status", help="show neurons, devices, models, decisions and the reconcile state"
    )
    add_gateway_arguments(p)
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
        print(f"helexa status: {refusal(args, exc, '/admin/fleet')}", file=sys.stderr)
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
        return Text(refusal(args, exc, "/admin/fleet") + " (retrying)", "red")
    if args.json:
        return Text(json.dumps(fleet, indent=2))
    return status_view.build(fleet, console.width, time.time())
