"""`helexa serve [--fleet F] [--models M] [--log-json]`: gateway, metrics, local neurons."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from helexa.cli.plan_cmd import add_host_flags, host_access
from helexa.config import Config, load_config
from helexa.errors import ConfigError
from helexa.reconcile.hosts import HostAccess


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run the gateway, its metrics endpoint and the local neurons"
    )
    p.add_argument("--fleet", help="fleet.toml (default: $HELEXA_FLEET, ./, /etc/helexa/)")
    p.add_argument("--models", help="models.toml (default: $HELEXA_MODELS, ./, /etc/helexa/)")
    p.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    add_host_flags(p)  # the daemon's host actions (applied with auto_apply = "all")
    p.set_defaults(func=run)


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
# The grep-friendly decision line: `decision=load model=m neuron=n reason="..."`.
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def decision_fields(message: str) -> dict[str, str] | None:
    """The key=value fields of a decision line (quotes dropped), None for other lines."""
    if not message.startswith("decision="):
        return None
    return {key: value.strip('"') for key, value in _FIELD.findall(message)}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; decision lines also carry their fields under "decision"."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": message,
        }
        fields = getattr(record, "decision", None) or decision_fields(message)
        if fields is not None:
            entry["decision"] = fields
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(as_json: bool, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)sZ %(levelname)s %(name)s: %(message)s")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # watchfiles logs every change it sees at INFO: its chatter belongs to --log-level debug.
    quiet = logging.getLevelName(level.upper()) > logging.DEBUG
    logging.getLogger("watchfiles").setLevel(logging.WARNING if quiet else logging.NOTSET)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_json, args.log_level)
    try:
        config = load_config(args.fleet, args.models)
    except ConfigError as exc:
        print(f"helexa serve: {exc}", file=sys.stderr)
        return 1
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_main(config, host_access(args)))
    except OSError as exc:  # e.g. the port is taken
        print(f"helexa serve: {exc}", file=sys.stderr)
        return 1
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it): a faster proxy loop."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def _main(config: Config, hosts: HostAccess | None) -> None:
    from helexa.serve.server import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(config, stop, hosts=hosts)
