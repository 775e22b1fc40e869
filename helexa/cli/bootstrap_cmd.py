"""`helexa bootstrap HOST`: install a neuron on a host over SSH and add it to fleet.toml."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from helexa.config.config import FLEET_ENV, FLEET_FILE, find_config_file
from helexa.config.fleet import NEURON_PORT, FleetConfig, NeuronEntry
from helexa.config.loader import load_toml
from helexa.deploy.bootstrap import BootstrapRequest, bootstrap, wheel_version
from helexa.deploy.layout import CONFIG_DIR, PREFIX, STATE_DIR, UNIT_DIR, HostLayout
from helexa.deploy.ssh import DEFAULT_KNOWN_HOSTS, SSHTarget
from helexa.errors import ConfigError, DeployError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bootstrap",
        help="install the neuron on a host over SSH, start it, add it to fleet.toml",
    )
    p.add_argument("host", metavar="HOST", help="host name or address to SSH to")
    p.add_argument("--name", help="neuron name in fleet.toml (default: HOST's first label)")
    p.add_argument(
        "--ssh-user", default="root", help="SSH user (sudo without password if not root)"
    )
    p.add_argument("--ssh-port", type=int, default=22)
    p.add_argument("--identity", type=Path, help="SSH private key (default: ~/.ssh keys, agent)")
    p.add_argument("--install", choices=["rpm", "pip"], help="rpm (dnf) or pip (venv in --prefix)")
    p.add_argument("--wheel", type=Path, help="push this helexa wheel instead of using PyPI")
    p.add_argument(
        "--accept-new-host-key",
        action="store_true",
        help="trust and record the host key on first contact (a changed key is always refused)",
    )
    p.add_argument("--fleet", help=f"fleet.toml (default: ${FLEET_ENV}, ./, /etc/helexa/)")
    p.add_argument("--endpoint", help=f"neuron URL (default: http://HOST:{NEURON_PORT})")
    p.add_argument("--token-file", type=Path, help="shared neuron token (default: the fleet's)")
    p.add_argument("--known-hosts", type=Path, default=DEFAULT_KNOWN_HOSTS)
    layout = p.add_argument_group("host layout (defaults are the FHS places the RPM uses)")
    layout.add_argument("--prefix", default=str(PREFIX), help="venv for --install pip")
    layout.add_argument("--config-dir", default=str(CONFIG_DIR))
    layout.add_argument("--state-dir", default=str(STATE_DIR))
    layout.add_argument("--unit-dir", default=str(UNIT_DIR))
    layout.add_argument("--service-user", default="helexa", help="user the neuron runs as")
    layout.add_argument(
        "--python",
        default="python3",
        metavar="PATH",
        help="interpreter the venv is made from (--install pip); the service user must be "
        "able to run it (default: python3)",
    )
    p.add_argument("--health-timeout", type=float, default=300.0, metavar="SECONDS")
    p.set_defaults(func=run)


def default_name(host: str) -> str:
    """`beast.internal` -> `beast`; an address stays whole."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.split(".", 1)[0]
    return host


def resolve_entry(args: argparse.Namespace, fleet: FleetConfig) -> NeuronEntry:
    """The [[neurons]] entry to write: flags, then the existing entry, then defaults."""
    name = args.name or default_name(args.host)
    existing = fleet.neuron(name)
    shared_tokens = {n.token_file for n in fleet.neurons if n.managed and n.token_file}
    token_file = args.token_file or (existing.token_file if existing else None)
    if token_file is None and len(shared_tokens) == 1:
        token_file = shared_tokens.pop()  # the fleet's one shared secret
    ssh = f"{args.ssh_user}@{args.host}" + (f":{args.ssh_port}" if args.ssh_port != 22 else "")
    endpoint = args.endpoint or (
        existing.endpoint if existing else f"http://{args.host}:{NEURON_PORT}"
    )
    install = args.install or (existing.install if existing else "pip" if args.wheel else "rpm")
    return NeuronEntry(
        name=name, endpoint=endpoint, ssh=ssh, install=install, token_file=token_file
    )


def build_request(args: argparse.Namespace) -> BootstrapRequest:
    found = find_config_file(args.fleet, FLEET_FILE, FLEET_ENV)
    fleet_path = found.path.resolve()
    fleet = load_toml(fleet_path, FleetConfig)
    entry = resolve_entry(args, fleet)
    if args.wheel is not None and entry.install != "pip":
        raise DeployError("--wheel needs --install pip")
    target = SSHTarget(
        host=args.host,
        port=args.ssh_port,
        user=args.ssh_user,
        identity=args.identity,
        known_hosts=args.known_hosts,
        accept_new_host_key=args.accept_new_host_key,
    )
    layout = HostLayout(
        prefix=PurePosixPath(args.prefix),
        config_dir=PurePosixPath(args.config_dir),
        state_dir=PurePosixPath(args.state_dir),
        unit_dir=PurePosixPath(args.unit_dir),
        user=args.service_user,
        python=args.python,
    )
    options: dict[str, Any] = {}
    if args.wheel is not None:
        options["version"] = wheel_version(args.wheel)
    return BootstrapRequest(
        target=target,
        entry=entry,
        fleet_path=fleet_path,
        layout=layout,
        wheel=args.wheel.resolve() if args.wheel else None,
        health_timeout_s=args.health_timeout,
        **options,
    )


def run(args: argparse.Namespace) -> int:
    try:
        request = build_request(args)
        if request.entry.token_file is None:
            print(
                "warning: no token_file: the neuron's API is open to anyone who can reach it",
                file=sys.stderr,
            )
        report = asyncio.run(bootstrap(request, say=lambda line: print(line, flush=True)))
    except (ConfigError, DeployError) as exc:
        print(f"helexa bootstrap: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"helexa bootstrap: invalid neuron entry: {exc}", file=sys.stderr)
        return 1
    print("bootstrap: changed" if report.changed else "bootstrap: no changes")
    return 0
