"""`helexa status [--gateway URL] [--json] [--watch [S]]`: the fleet as a running gateway sees it.

The rendering is pure (`helexa.cli.status_view`); this module only fetches
`/admin/fleet` and prints it once, as JSON, or live (`--watch` redraws in
place with rich's Live until Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import httpx
from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from helexa.cli import status_view

DEFAULT_GATEWAY = "http://127.0.0.1:31313"
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
    p.add_argument("--api-key", default=os.environ.get("HELEXA_API_KEY"), help="($HELEXA_API_KEY)")
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
    if args.watch:
        return _watch(args, console, transport)
    try:
        fleet = fetch_fleet(args.gateway, args.api_key, transport)
    except httpx.HTTPError as exc:
        print(f"helexa status: {_unreachable(args.gateway, exc)}", file=sys.stderr)
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
        return Text(_unreachable(args.gateway, exc) + " (retrying)", "red")
    if args.json:
        return Text(json.dumps(fleet, indent=2))
    return status_view.build(fleet, console.width, time.time())


def _unreachable(gateway: str, exc: httpx.HTTPError) -> str:
    return f"cannot read {gateway}/admin/fleet: {exc}"
