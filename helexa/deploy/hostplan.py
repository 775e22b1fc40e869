"""Host-level plan: desired host state (fleet entry + rendered files) minus observed
facts = a list of host actions. Pure, like the reconciler's model diff.

HostAction has the reconciler's Action shape (id, kind, neuron, reason, before,
after, depends_on), with `target` (a package, a path, a unit) where Action has
`model`, so plan/apply can render and order both kinds in one plan.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from helexa.config.fleet import NeuronEntry
from helexa.deploy.facts import HostFacts
from helexa.deploy.layout import NEURON_UNIT, RPM_PACKAGE, HostLayout, InstallMethod
from helexa.deploy.render import (
    NeuronTomlParams,
    ServiceParams,
    render_neuron_toml,
    render_neuron_unit,
    render_supervisor,
)

HostActionKind = Literal[
    "create_user", "install", "write_file", "daemon_reload", "enable", "restart"
]
SECRET_MASK = "********"


@dataclass(frozen=True)
class ManagedFile:
    path: PurePosixPath
    content: str
    mode: int
    owner: str = "root"
    group: str = "root"
    secret: bool = False  # never shown in plans or logs
    restarts_neuron: bool = True  # a change takes effect only after a restart

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode("utf-8")).hexdigest()

    def describe(self) -> dict[str, Any]:
        """The `after` of a write_file action (the content is shown unless secret)."""
        return {
            "path": str(self.path),
            "mode": f"{self.mode:04o}",
            "owner": f"{self.owner}:{self.group}",
            "sha256": self.sha256,
            "content": SECRET_MASK if self.secret else self.content,
        }


@dataclass(frozen=True)
class DesiredHost:
    name: str
    install: InstallMethod
    version: str  # the helexa version the host should run
    wheel: Path | None  # a local wheel to push (install = "pip"); None = PyPI / dnf repo
    service_user: str
    systemd: bool
    files: tuple[ManagedFile, ...]


@dataclass(frozen=True)
class HostAction:
    id: str
    kind: HostActionKind
    neuron: str
    target: str
    reason: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    depends_on: tuple[str, ...] = ()

    @property
    def symbol(self) -> str:
        if self.kind in ("restart", "daemon_reload"):
            return "↻"
        return "+" if self.before is None else "~"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "symbol": self.symbol,
            "neuron": self.neuron,
            "target": self.target,
            "reason": self.reason,
            "before": dict(self.before) if self.before is not None else None,
            "after": dict(self.after) if self.after is not None else None,
            "depends_on": list(self.depends_on),
        }


def desired_host(
    entry: NeuronEntry,
    layout: HostLayout,
    *,
    version: str,
    systemd: bool,
    token: str | None,
    wheel: Path | None = None,
) -> DesiredHost:
    """What a managed neuron host should look like; `systemd` comes from its facts
    (a unit with it, the supervisor script without it)."""
    group = layout.user
    service = ServiceParams.for_neuron(layout, entry.install)
    files = [
        ManagedFile(
            layout.neuron_toml,
            render_neuron_toml(NeuronTomlParams.from_entry(entry, layout)),
            mode=0o640,
            group=group,
        )
    ]
    if entry.token_file is not None and token is not None:
        files.append(
            ManagedFile(
                PurePosixPath(entry.token_file), token + "\n", mode=0o640, group=group, secret=True
            )
        )
    if systemd:
        files.append(ManagedFile(layout.unit_path, render_neuron_unit(service), mode=0o644))
    else:
        script = render_supervisor(service, run_as_root=layout.user == "root")
        files.append(ManagedFile(layout.supervisor_script, script, mode=0o755))
    return DesiredHost(
        name=entry.name,
        install=entry.install,
        version=version,
        wheel=wheel,
        service_user=layout.user,
        systemd=systemd,
        files=tuple(files),
    )


def managed_paths(entry: NeuronEntry, layout: HostLayout) -> list[PurePosixPath]:
    """Every file desired_host may manage (with or without systemd): what facts hash."""
    paths = [layout.neuron_toml, layout.unit_path, layout.supervisor_script]
    if entry.token_file is not None:
        paths.append(PurePosixPath(entry.token_file))
    return paths


@dataclass
class _Planner:
    neuron: str
    actions: list[HostAction] = field(default_factory=list)

    def add(self, kind: HostActionKind, target: str, reason: str, **extra: Any) -> str:
        action_id = f"h{len(self.actions) + 1}"
        self.actions.append(HostAction(action_id, kind, self.neuron, target, reason, **extra))
        return action_id


def diff_host(desired: DesiredHost, facts: HostFacts, layout: HostLayout) -> tuple[HostAction, ...]:
    """The actions that take the host from `facts` to `desired`; () when it matches."""
    plan = _Planner(desired.name)
    setup: list[str] = []
    if desired.service_user != "root" and not facts.service_user_exists:
        setup.append(
            plan.add("create_user", desired.service_user, "the service user does not exist")
        )
    installed = facts.installed_version(desired.install)
    changed_for_restart: list[str] = []
    if installed != desired.version:
        package = RPM_PACKAGE if desired.install == "rpm" else str(layout.prefix)
        source = str(desired.wheel.name) if desired.wheel else desired.install
        reason = (
            f"not installed; installing {desired.version} ({source})"
            if installed is None
            else f"installed {installed}, want {desired.version} ({source})"
        )
        action = plan.add(
            "install",
            package,
            reason,
            before={"version": installed} if installed else None,
            after={"version": desired.version, "method": desired.install},
            depends_on=tuple(setup),
        )
        setup.append(action)
        changed_for_restart.append(action)
    unit_written = None
    for managed in desired.files:
        observed = facts.file_hashes.get(str(managed.path))
        if observed == managed.sha256:
            continue
        action = plan.add(
            "write_file",
            str(managed.path),
            "missing" if observed is None else "content differs",
            before={"sha256": observed} if observed else None,
            after=managed.describe(),
            depends_on=tuple(setup),
        )
        if managed.restarts_neuron:
            changed_for_restart.append(action)
        if managed.path == layout.unit_path:
            unit_written = action
    service_deps: list[str] = list(changed_for_restart)
    if desired.systemd:
        if unit_written is not None:
            service_deps.append(
                plan.add(
                    "daemon_reload", NEURON_UNIT, "the unit changed", depends_on=(unit_written,)
                )
            )
        if facts.unit_enabled != "enabled":
            service_deps.append(
                plan.add(
                    "enable",
                    NEURON_UNIT,
                    f"is-enabled: {facts.unit_enabled or 'unknown'}",
                    before=(
                        {"enabled": facts.unit_enabled}
                        if facts.unit_enabled not in (None, "not-found")
                        else None
                    ),
                    after={"enabled": "enabled"},
                    depends_on=tuple(service_deps),
                )
            )
    if changed_for_restart or not facts.running or facts.restart_pending:
        if facts.restart_pending:
            reason = "pending: an earlier apply changed the host but did not restart it"
        elif not facts.running:
            reason = "not running"
        else:
            reason = "its package or files changed"
        plan.add(
            "restart",
            NEURON_UNIT if desired.systemd else str(layout.supervisor_script),
            reason,
            before={"running": facts.running},
            after={"running": True},
            depends_on=tuple(service_deps),
        )
    return tuple(plan.actions)


def file_diff(path: PurePosixPath | str, old: str, new: str) -> str:
    """A unified diff of a managed file, as `helexa plan` shows it (never for secrets)."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"{path} (on host)",
        tofile=f"{path} (rendered)",
    )
    return "".join(lines)


def action_line(action: HostAction) -> str:
    """`~ write_file /etc/helexa/neuron.toml on beast: content differs`, plan-style."""
    return f"{action.symbol} {action.kind} {action.target} on {action.neuron}: {action.reason}"


def render_host_actions(actions: tuple[HostAction, ...]) -> str:
    """Action lines, each write_file followed by its diff (or a note for a secret)."""
    out: list[str] = []
    for action in actions:
        out.append(action_line(action))
        after = action.after or {}
        if action.kind == "write_file" and after.get("diff"):
            out.extend("    " + line for line in str(after["diff"]).splitlines())
        elif action.kind == "write_file" and after.get("content") == SECRET_MASK:
            out.append("    (secret: content not shown)")
    return "\n".join(out) + ("\n" if out else "")
