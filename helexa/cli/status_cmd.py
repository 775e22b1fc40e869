"""`helexa status [--gateway URL] [--json] [--watch]`: the fleet as a running gateway sees it."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

DEFAULT_GATEWAY = "http://127.0.0.1:31313"
RECENT_DECISIONS = 10


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("status", help="show neurons, models, decisions")
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
        help="refresh every SECONDS (default 2) until Ctrl-C",
    )
    p.set_defaults(func=run)


def fetch_fleet(
    gateway: str, api_key: str | None = None, transport: httpx.BaseTransport | None = None
) -> dict[str, Any]:
    """GET /admin/fleet; raises httpx.HTTPError on failure."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=gateway, headers=headers, timeout=10, transport=transport) as c:
        response = c.get("/admin/fleet")
        response.raise_for_status()
        fleet: dict[str, Any] = response.json()
        return fleet


def run(args: argparse.Namespace, transport: httpx.BaseTransport | None = None) -> int:
    console = Console()
    while True:
        try:
            fleet = fetch_fleet(args.gateway, args.api_key, transport)
        except httpx.HTTPError as exc:
            print(f"helexa status: cannot read {args.gateway}/admin/fleet: {exc}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(fleet, indent=2))
        else:
            if args.watch:
                console.clear()
            console.print(render(fleet))
        if not args.watch:
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0


def render(fleet: dict[str, Any]) -> Group:
    """Neurons, models and recent decisions as rich tables."""
    parts: list[Any] = []
    health = fleet.get("health") or {}
    if health:
        n = health.get("neurons", {})
        parts.append(
            Text(
                f"fleet {health.get('status')}: "
                f"{n.get('healthy')}/{n.get('total')} neurons healthy",
                style="bold",
            )
        )
    error = (fleet.get("config") or {}).get("error")
    if error:
        parts.append(Text(f"config error (last good config in use): {error}", style="red"))
    parts.append(_neurons(fleet.get("neurons", [])))
    parts.append(_models(fleet.get("models", [])))
    parts.append(_decisions(fleet.get("decisions", [])[-RECENT_DECISIONS:]))
    return Group(*parts)


def _neurons(neurons: list[dict[str, Any]]) -> Table:
    table = Table(title="neurons", title_justify="left")
    for column in ("name", "kind", "state", "devices", "memory used/total", "models", "note"):
        table.add_column(column)
    for n in neurons:
        devices = n.get("devices", [])
        total = sum(d["memory_total_mb"] for d in devices)
        used = total - sum(d["memory_free_mb"] for d in devices)
        state = Text("up", style="green") if n.get("healthy") else Text("down", style="red")
        table.add_row(
            n["name"],
            n.get("kind", "neuron"),
            state,
            ", ".join(f"{d['kind']}:{d['index']} {d['name']}" for d in devices) or "-",
            f"{_gb(used)} / {_gb(total)}" if devices else "-",
            str(len(n.get("models", []))),
            n.get("last_error") or "",
        )
    return table


def _models(models: list[dict[str, Any]]) -> Table:
    table = Table(title="models", title_justify="left")
    for column in ("model", "pinned", "where (state, in flight)"):
        table.add_column(column)
    for m in models:
        where = ", ".join(
            f"{loc['neuron']} ({loc['state']}, {loc['in_flight']})" for loc in m["locations"]
        )
        table.add_row(m["id"], "yes" if m.get("pinned") else "", where or "not loaded")
    return table


def _decisions(decisions: list[dict[str, Any]]) -> Table:
    table = Table(title="recent decisions", title_justify="left")
    for column in ("at (UTC)", "decision", "model", "neuron", "reason"):
        table.add_column(column)
    for d in decisions:
        at = datetime.fromtimestamp(d["at"], UTC).strftime("%H:%M:%S")
        table.add_row(at, d["kind"], d["model"], d.get("neuron") or "-", d["reason"])
    return table


def _gb(mb: int) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb} MB"
