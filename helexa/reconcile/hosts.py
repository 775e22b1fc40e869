"""Host-level reconcile for SSH-managed neurons (`[[neurons]]` entries with `ssh`).

Observing a host connects, gathers its facts and diffs them against the rendered
desired state (deploy.hostsync.plan_host); applying re-plans right before acting
(the precondition: the host must still need exactly the planned actions) and runs
them in order over one connection.  A host that cannot be reached or probed is a
plan error naming the host and the step, never a silent omission.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncssh

from helexa import __version__
from helexa.config import NeuronEntry
from helexa.deploy.bootstrap import read_token
from helexa.deploy.facts import HostFacts
from helexa.deploy.hostapply import HostApplier
from helexa.deploy.hostplan import HostAction
from helexa.deploy.hostsync import HostPlan, plan_host
from helexa.deploy.layout import NEURON_UNIT, HostLayout
from helexa.deploy.ssh import DEFAULT_KNOWN_HOSTS, ConnectFactory, SSHTarget, connect
from helexa.errors import ActionFailed, DeployError
from helexa.reconcile.observed import ObservedState, snapshot
from helexa.reconcile.plan import Plan, PlanError
from helexa.reconcile.report import ActionResult, ActionStatus, Phase

# The applier's progress hook: (action, phase, elapsed seconds, message).
Emit = Callable[[HostAction, Phase, float, str], None]
# Records one action's outcome: (action, status, message, elapsed seconds).
Finish = Callable[[HostAction, ActionStatus, str, float], None]


@dataclass(frozen=True)
class HostAccess:
    """How plan/apply reach managed hosts: one set of SSH options and one layout for all."""

    known_hosts: Path = DEFAULT_KNOWN_HOSTS
    identity: Path | None = None  # None = the agent and the default ~/.ssh keys
    layout: HostLayout = field(default_factory=HostLayout)
    version: str = __version__  # the helexa version every host should run
    wheel: Path | None = None  # pushed to install = "pip" hosts instead of PyPI
    connect_factory: ConnectFactory = asyncssh.connect

    def target(self, entry: NeuronEntry) -> SSHTarget:
        if entry.ssh is None:
            raise DeployError(f"{entry.name}: no `ssh` in fleet.toml")
        return SSHTarget.parse(entry.ssh, known_hosts=self.known_hosts, identity=self.identity)


@dataclass(frozen=True)
class HostObservation:
    """One managed host as plan saw it: its host plan, or why there is none."""

    neuron: str
    plan: HostPlan | None = None
    error: str | None = None

    @property
    def restarts(self) -> bool:
        return self.plan is not None and any(a.kind == "restart" for a in self.plan.actions)


async def observe_host(entry: NeuronEntry, access: HostAccess) -> HostObservation:
    try:
        token = read_token(entry)
        async with await connect(access.target(entry), factory=access.connect_factory) as host:
            host_plan = await plan_host(
                host, entry, access.layout, version=access.version, token=token, wheel=access.wheel
            )
    except DeployError as exc:
        return HostObservation(entry.name, error=str(exc))
    return HostObservation(entry.name, plan=host_plan)


async def observe_hosts(
    entries: Iterable[NeuronEntry], access: HostAccess
) -> dict[str, HostObservation]:
    """Every managed host at once (each its own SSH connection)."""
    managed = [e for e in entries if e.managed]
    found = await asyncio.gather(*(observe_host(e, access) for e in managed))
    return {o.neuron: o for o in found}


# -- pure: fingerprint, numbering, merging into the plan -------------------------------


def facts_digest(facts: HostFacts) -> dict[str, Any]:
    """The host facts a plan depends on (free disk and GPUs drift; they are left out)."""
    return {
        "files": dict(sorted(facts.file_hashes.items())),
        "rpm": facts.rpm_version,
        "pip": facts.pip_version,
        "enabled": facts.unit_enabled,
        "active": facts.unit_active,
        "running": facts.running,
        "restart_pending": facts.restart_pending,
        "user": facts.service_user_exists,
    }


def hosts_fingerprint(observed: str, hosts: Mapping[str, HostObservation]) -> str:
    """The neuron fingerprint combined with every host's facts (or its error)."""
    facts = {
        name: facts_digest(o.plan.facts) if o.plan is not None else {"error": o.error}
        for name, o in sorted(hosts.items())
    }
    blob = json.dumps({"neurons": observed, "hosts": facts}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def number_host_actions(hosts: Mapping[str, HostObservation]) -> tuple[HostAction, ...]:
    """All hosts' actions with plan-wide ids (each host plan numbers its own h1, h2...)."""
    numbered: list[HostAction] = []
    for name in sorted(hosts):
        host_plan = hosts[name].plan
        if host_plan is None:
            continue
        ids: dict[str, str] = {}
        for action in host_plan.actions:
            ids[action.id] = f"h{len(numbered) + 1}"
            numbered.append(
                replace(
                    action,
                    id=ids[action.id],
                    depends_on=tuple(ids[d] for d in action.depends_on),
                )
            )
    return tuple(numbered)


def with_hosts(plan: Plan, observed: ObservedState, hosts: Mapping[str, HostObservation]) -> Plan:
    """The model plan plus the host actions, host errors and a fingerprint covering both."""
    if not hosts:
        return plan
    errors = tuple(
        PlanError(f"host {name}", o.error) for name, o in sorted(hosts.items()) if o.error
    )
    return replace(
        plan,
        observed=hosts_fingerprint(observed.fingerprint(), hosts),
        host_actions=number_host_actions(hosts),
        errors=plan.errors + errors,
    )


def requested_restart(neuron: str, target: str, reason: str) -> HostAction:
    """A restart nothing on the host calls for, asked for by name (defrag)."""
    return HostAction(
        "h1", "restart", neuron, target, reason,
        before={"running": True}, after={"running": True, "requested": True},
    )  # fmt: skip


def is_requested(action: HostAction) -> bool:
    return action.kind == "restart" and bool((action.after or {}).get("requested"))


def with_requested_restarts(
    hosts: Mapping[str, HostObservation], requested: Mapping[str, str]
) -> dict[str, HostObservation]:
    """Each requested host's plan with a restart at its end (one it plans anyway will do)."""
    merged = dict(hosts)
    for name, reason in requested.items():
        found = hosts.get(name)
        if found is None or found.plan is None or found.restarts:
            continue
        host_plan = found.plan
        target = (
            NEURON_UNIT if host_plan.desired.systemd else str(host_plan.layout.supervisor_script)
        )
        restart = requested_restart(name, target, reason)
        restart = replace(
            restart,
            id=f"h{len(host_plan.actions) + 1}",
            depends_on=tuple(a.id for a in host_plan.actions[-1:]),
        )
        merged[name] = replace(
            found, plan=replace(host_plan, actions=(*host_plan.actions, restart))
        )
    return merged


def after_restarts(observed: ObservedState, hosts: Mapping[str, HostObservation]) -> ObservedState:
    """What the model diff should plan against: a restarted neuron comes back empty."""
    restarting = {name for name, o in hosts.items() if o.restarts}
    if not restarting:
        return observed
    fleet = snapshot(observed.fleet)
    for name in restarting & fleet.neurons.keys():
        fleet.neurons[name].models.clear()
    return ObservedState(fleet)


# -- apply ----------------------------------------------------------------------------


class HostRunner:
    """Applies one host's planned actions over SSH; re-plans first as the precondition."""

    def __init__(
        self,
        access: HostAccess,
        entries: Mapping[str, NeuronEntry],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.access = access
        self.entries = entries
        self.clock = clock

    async def apply(
        self, neuron: str, planned: tuple[HostAction, ...], emit: Emit
    ) -> list[ActionResult]:
        results: list[ActionResult] = []

        def finish(
            action: HostAction, status: ActionStatus, message: str = "", elapsed: float = 0.0
        ) -> None:
            emit(action, status, elapsed, message)
            results.append(ActionResult(action, status, message, elapsed))

        started = self.clock()
        try:
            await self._run(neuron, planned, emit, finish)
        except (DeployError, ActionFailed) as exc:
            if len(results) == len(planned):  # all done; closing the connection failed
                return results
            finish(planned[len(results)], "failed", str(exc), self.clock() - started)
        for action in planned[len(results) :]:
            finish(action, "not_attempted", f"an earlier step on {neuron} failed")
        return results

    async def _run(
        self,
        neuron: str,
        planned: tuple[HostAction, ...],
        emit: Emit,
        finish: Finish,
    ) -> None:
        entry = self.entries.get(neuron)
        if entry is None or not entry.managed:
            raise ActionFailed(f"neuron {neuron} is no longer SSH-managed in fleet.toml")
        token = read_token(entry)
        async with await connect(
            self.access.target(entry), factory=self.access.connect_factory
        ) as host:
            fresh = await plan_host(
                host,
                entry,
                self.access.layout,
                version=self.access.version,
                token=token,
                wheel=self.access.wheel,
            )
            wanted = fresh.actions
            if (
                planned
                and is_requested(planned[-1])
                and not any(a.kind == "restart" for a in wanted)
            ):  # asked for by name (defrag): nothing on the host calls for it
                wanted = (*wanted, planned[-1])
            if not wanted:
                for action in planned:
                    finish(action, "skipped", "the host already matches", 0.0)
                return
            if _shape(wanted) != _shape(planned):
                now = ", ".join(f"{kind} {target}" for kind, target in _shape(wanted))
                raise ActionFailed(
                    f"precondition: {neuron} changed since the plan (it now needs: {now}); "
                    "run `helexa plan` again"
                )
            applier = HostApplier(host, fresh.desired, fresh.layout, say=lambda _line: None)
            await applier.prepare(wanted)
            for action, current in zip(planned, wanted, strict=True):
                started = self.clock()
                emit(action, "start", 0.0, "")
                await applier.run_action(current)
                finish(action, "done", "", self.clock() - started)


def _shape(actions: Iterable[HostAction]) -> list[tuple[str, str]]:
    return [(a.kind, a.target) for a in actions]
