"""What the CLI commands that talk to a running gateway share: where it is and its key.

`--gateway` (or $HELEXA_GATEWAY_URL), and the API key from `--api-key-file`,
`--api-key` or $HELEXA_API_KEY. The file or the variable is preferred: a key on
the command line shows in `ps`. A 401/403 says which flag or variable gives the key.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import httpx

DEFAULT_GATEWAY = "http://127.0.0.1:31313"
API_KEY_ENV = "HELEXA_API_KEY"
KEY_HINT = f"set ${API_KEY_ENV}, or pass --api-key-file FILE (a file holding the key)"
FETCH_TIMEOUT_S = 10.0


class ApiKeyUnreadable(Exception):
    """The API key could not be read (named file missing or empty)."""


def add_gateway_arguments(p: argparse.ArgumentParser) -> None:
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


def refusal(args: argparse.Namespace, exc: httpx.HTTPError, path: str) -> str:
    """What to tell the operator when reading `path` from the gateway failed."""
    where = f"cannot read {args.gateway}{path}"
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in (401, 403):
        source = getattr(args, "api_key_source", None)
        if source is None:
            return f"{where}: the gateway needs an API key; {KEY_HINT}"
        return f"{where}: the gateway refused the API key from {source}; {KEY_HINT}"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"{where}: HTTP {exc.response.status_code} {exc.response.text[:200]}".rstrip()
    return f"{where}: {exc}"
