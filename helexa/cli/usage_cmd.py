"""`helexa usage [--window 1h] [--key NAME] [--json]`: per-key usage from a running gateway.

The gateway and its key are given as for `helexa status` (helexa.cli.gateway_args).

Reads `GET /admin/usage`; the table is rendered by `render_usage` (pure).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from helexa.cli.gateway_args import (
    FETCH_TIMEOUT_S,
    ApiKeyUnreadable,
    add_gateway_arguments,
    refusal,
    resolve_api_key,
)

COLUMNS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "usage", help="requests and tokens per API key and model (from the gateway)"
    )
    add_gateway_arguments(p)
    p.add_argument("--window", default="1h", help="how far back: 90s, 30m, 1h, 24h (default 1h)")
    p.add_argument("--key", help="one key's usage only (by name)")
    p.add_argument("--json", action="store_true", help="print /admin/usage as JSON")
    p.set_defaults(func=run)


def fetch_usage(
    gateway: str,
    api_key: str | None,
    window: str,
    key: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """GET /admin/usage; raises httpx.HTTPError on failure."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    params = {"window": window} | ({"key": key} if key else {})
    with httpx.Client(
        base_url=gateway, headers=headers, timeout=FETCH_TIMEOUT_S, transport=transport
    ) as client:
        response = client.get("/admin/usage", params=params)
        response.raise_for_status()
        usage: dict[str, Any] = response.json()
        return usage


def run(args: argparse.Namespace, transport: httpx.BaseTransport | None = None) -> int:
    try:
        args.api_key, args.api_key_source = resolve_api_key(args)
    except ApiKeyUnreadable as exc:
        print(f"helexa usage: {exc}", file=sys.stderr)
        return 2
    try:
        usage = fetch_usage(args.gateway, args.api_key, args.window, args.key, transport)
    except httpx.HTTPError as exc:
        print(f"helexa usage: {refusal(args, exc, '/admin/usage')}", file=sys.stderr)
        return 1
    print(json.dumps(usage, indent=2) if args.json else render_usage(usage, args.window))
    return 0


def render_usage(usage: dict[str, Any], window: str) -> str:
    """One row per key (its total) and one per model under it."""
    keys = usage.get("keys", [])
    if not keys:
        return f"no keyed requests in the last {window}"
    header = ("KEY", "MODEL", "REQUESTS", "ERRORS", "INPUT", "OUTPUT", "CACHED")
    rows: list[tuple[str, ...]] = [header]
    for key in keys:
        rows.append((key["key"], "(all)", *(str(key[c]) for c in COLUMNS)))
        for model in key["models"]:
            rows.append(("", model["model"] or "(none)", *(str(model[c]) for c in COLUMNS)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    return f"usage in the last {window}\n" + "\n".join(lines)
