"""`helexa neuron [--config neuron.toml] [--listen HOST:PORT]`: the per-host daemon."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from helexa.config.fields import is_loopback_host, parse_listen
from helexa.errors import ConfigError

CONFIG_ENV = "HELEXA_NEURON_CONFIG"
CONFIG_SEARCH = (Path("neuron.toml"), Path("/etc/helexa/neuron.toml"))

log = logging.getLogger("helexa.neuron")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "neuron", help="run the per-host neuron daemon (serves the models loaded on this host)"
    )
    p.add_argument(
        "--config",
        type=Path,
        help=f"neuron.toml (default: ${CONFIG_ENV}, ./neuron.toml, /etc/helexa/neuron.toml)",
    )
    p.add_argument("--listen", metavar="HOST:PORT", help="overrides [neuron] listen")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def find_config(explicit: Path | None) -> Path | None:
    """--config, then $HELEXA_NEURON_CONFIG, then the search path; None = defaults."""
    if explicit is not None:
        return explicit
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return next((p for p in CONFIG_SEARCH if p.is_file()), None)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from helexa.neuron.config import load_neuron_config

    path = find_config(args.config)
    try:
        config = load_neuron_config(path)
        host, port = parse_listen(args.listen or config.neuron.listen)
        token = config.read_token()
    except (ConfigError, ValueError, OSError) as exc:
        print(f"helexa neuron: {exc}", file=sys.stderr)
        return 1
    if config.neuron.offline:
        # Must be set before transformers / huggingface_hub are imported.
        os.environ["HF_HUB_OFFLINE"] = "1"
    if config.neuron.torch_threads:
        os.environ["HELEXA_TORCH_THREADS"] = str(config.neuron.torch_threads)
    if token is None and not is_loopback_host(host):
        print(
            f"helexa neuron: listening on {host}:{port} needs a token_file (anyone who can "
            "reach it could load models and generate); set [neuron] token_file, or listen "
            "on 127.0.0.1",
            file=sys.stderr,
        )
        return 1

    import uvicorn

    from helexa.neuron.app import build_app
    from helexa.neuron.limits import neuron_protocol

    app = build_app(config, token=token)
    log.info(
        "neuron %s listening on %s:%d (config: %s)",
        config.neuron.name,
        host,
        port,
        path or "defaults",
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=neuron_protocol(config),
        log_level=args.log_level,
        access_log=args.log_level == "debug",
        timeout_graceful_shutdown=5,
    )
    return 0
