"""`helexa bootstrap HOST`: take a fresh host to a healthy neuron listed in fleet.toml.

connect → facts + preflight → host plan (install, files, enable, restart) → apply →
wait for /health and /discovery through the endpoint → upsert the [[neurons]] entry.
Every step is idempotent: a second run finds nothing to do and says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import httpx

from helexa import __version__
from helexa.config.edit import upsert_neuron
from helexa.config.fleet import NeuronEntry
from helexa.deploy.facts import HostFacts
from helexa.deploy.hostapply import HostApplier
from helexa.deploy.hostplan import HostAction
from helexa.deploy.hostsync import plan_host
from helexa.deploy.layout import HostLayout, InstallMethod
from helexa.deploy.ssh import ConnectFactory, SSHTarget, connect
from helexa.errors import DeployError

MIN_PYTHON = (3, 11)
MIN_FREE_MB = 1024  # a venv with torch needs several GB; below this nothing fits
HEALTH_TIMEOUT_S = 300.0
HEALTH_POLL_S = 0.5

Say = Callable[[str], None]


@dataclass(frozen=True)
class BootstrapRequest:
    target: SSHTarget
    entry: NeuronEntry  # the [[neurons]] entry as it will be written
    fleet_path: Path
    layout: HostLayout = field(default_factory=HostLayout)
    wheel: Path | None = None
    version: str = __version__
    health_timeout_s: float = HEALTH_TIMEOUT_S


@dataclass
class BootstrapReport:
    facts: HostFacts
    actions: tuple[HostAction, ...]
    fleet_changed: bool
    discovery: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.actions) or self.fleet_changed


def wheel_version(wheel: Path) -> str:
    """The version in a wheel's file name (`helexa-0.1.0-py3-none-any.whl`)."""
    parts = wheel.name.split("-")
    if len(parts) < 5 or not wheel.name.endswith(".whl"):
        raise DeployError(f"{wheel}: not a wheel file name (name-version-py-abi-platform.whl)")
    return parts[1]


def preflight(
    facts: HostFacts,
    install: InstallMethod,
    service_user: str = "root",
    python: str = "python3",
) -> list[str]:
    """Warnings for the operator; raises DeployError for a host that cannot work."""
    if install == "rpm" and not facts.os.is_like("fedora", "rhel", "centos"):
        raise DeployError(
            f'install = "rpm" needs a Fedora/RHEL-family host, this is {facts.os.id}; '
            "use --install pip"
        )
    if install == "pip" and (facts.python is None or facts.python < MIN_PYTHON):
        found = ".".join(map(str, facts.python)) if facts.python else "none"
        raise DeployError(f'install = "pip" needs python3 >= 3.11 on the host (found {found})')
    blocked = facts.python_blocked_for(service_user) if install == "pip" else None
    if blocked is not None:
        # The venv links to this interpreter: the neuron would fail to start, over and over.
        raise DeployError(
            f"the service user {service_user} cannot run {python} on the host: {blocked} "
            "(a per-user Python such as pyenv's?); install a system python3 >= 3.11 "
            "or pass --python PATH with one every user can run"
        )
    if facts.disk_free_mb is not None and facts.disk_free_mb < MIN_FREE_MB:
        raise DeployError(f"only {facts.disk_free_mb} MiB free for the install; need {MIN_FREE_MB}")
    warnings = []
    if facts.gpu_error:
        warnings.append(f"nvidia-smi failed: {facts.gpu_error}")
    elif not facts.gpus:
        warnings.append("no NVIDIA GPU found: the neuron will serve on CPU")
    if not facts.systemd:
        warnings.append("systemd is not running: the neuron runs under a supervisor script")
    return warnings


def read_token(entry: NeuronEntry) -> str | None:
    if entry.token_file is None:
        return None
    try:
        token = Path(entry.token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DeployError(
            f"token_file {entry.token_file} cannot be read here ({exc.strerror}); the same "
            "secret goes to the host and to the gateway: create it (e.g. `openssl rand -hex 32`)"
        ) from None
    if not token:  # an empty file on the host would leave its neuron without auth
        raise DeployError(
            f"token_file {entry.token_file} is empty: write the fleet's shared secret into "
            "it (e.g. `openssl rand -hex 32`)"
        )
    return token


async def bootstrap(
    request: BootstrapRequest,
    *,
    say: Say = print,
    connect_factory: ConnectFactory = asyncssh.connect,
    http_transport: httpx.AsyncBaseTransport | None = None,
) -> BootstrapReport:
    entry, layout = request.entry, request.layout
    token = read_token(entry)
    say(f"[1/5] connect {request.target.label}")
    async with await connect(request.target, factory=connect_factory) as host:
        say("[2/5] facts")
        host_plan = await plan_host(
            host, entry, layout, version=request.version, token=token, wheel=request.wheel
        )
        facts, actions = host_plan.facts, host_plan.actions
        say("      " + describe_facts(facts))
        for warning in preflight(facts, entry.install, layout.user, layout.python):
            say(f"      warning: {warning}")
        say(f"[3/5] apply: {len(actions)} host change(s)" if actions else "[3/5] host: up to date")
        applier = HostApplier(host, host_plan.desired, layout, say)
        await applier.apply(actions)
        say(f"[4/5] wait for {entry.endpoint}/health")
        try:
            discovery = await wait_healthy(
                entry.endpoint, token, request.health_timeout_s, http_transport
            )
        except DeployError as exc:
            tail = await applier.log_tail()
            raise DeployError(f"{request.target.label}: wait for health: {exc}\n{tail}") from None
    result = upsert_neuron(request.fleet_path, entry.name, fleet_values(entry))
    say(f"[5/5] {request.fleet_path}: {result.summary if result.changed else 'entry up to date'}")
    report = BootstrapReport(facts, actions, result.changed, discovery)
    say(summary(report, entry))
    return report


def fleet_values(entry: NeuronEntry) -> dict[str, Any]:
    values: dict[str, Any] = {
        "endpoint": entry.endpoint,
        "ssh": entry.ssh,
        "install": entry.install,
    }
    if entry.token_file is not None:
        values["token_file"] = str(entry.token_file)
    return values


async def wait_healthy(
    endpoint: str,
    token: str | None,
    timeout_s: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, Any]:
    """Poll /health until it answers, then read /discovery (token-protected)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    async with httpx.AsyncClient(
        base_url=endpoint, transport=transport, timeout=5.0, headers=headers
    ) as client:
        while time.monotonic() < deadline:
            try:
                health = await client.get("/health")
                if health.status_code == 200:
                    discovery = await client.get("/discovery")
                    discovery.raise_for_status()
                    data: dict[str, Any] = discovery.json()
                    return data
                last_error = f"/health answered {health.status_code}"
            except httpx.HTTPStatusError as exc:
                raise DeployError(f"/discovery answered {exc.response.status_code}") from None
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(HEALTH_POLL_S)
    raise DeployError(f"{endpoint} not healthy after {timeout_s:g}s ({last_error})")


def describe_facts(facts: HostFacts) -> str:
    python = ".".join(map(str, facts.python)) if facts.python else "no python3"
    gpus = ", ".join(f"{g.name} ({g.memory_mb} MiB)" for g in facts.gpus) or "no GPU"
    init = "systemd" if facts.systemd else "no systemd"
    os_name = facts.os.pretty_name or f"{facts.os.id} {facts.os.version_id}"
    return f"{os_name}, {facts.arch}, Python {python}, {init}, {gpus}"


def summary(report: BootstrapReport, entry: NeuronEntry) -> str:
    devices = report.discovery.get("devices") or []
    described = ", ".join(
        f"{d.get('kind')}:{d.get('index')} {d.get('name')} "
        f"{d.get('memory_free_mb')}/{d.get('memory_total_mb')} MiB free"
        for d in devices
    )
    state = "changed" if report.changed else "no changes"
    version = report.discovery.get("version", "?")
    return (
        f"{entry.name}: {state}; helexa {version} at {entry.endpoint}; "
        f"devices: {described or 'none reported'}"
    )
