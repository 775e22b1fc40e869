"""diff(desired, observed) -> Plan: pure, deterministic, simulated step by step.

Each action is applied to a copy of the observed fleet as it is planned, so later
steps see the memory earlier ones free or take (a load that needs an eviction
comes after that unload and depends on it).  Order:

1. unload copies of models no longer in models.toml (frees memory first);
2. unload unpinned copies idle for longer than their keep_alive;
3. reload copies whose dtype, path or revision changed (only what the neuron
   reports can be compared: dtype "auto" matches whatever the neuron chose);
4. unload copies of pinned models beyond `replicas` (idle, least recently used first);
5. load missing replicas of pinned models, most important first, placed by
   fleet.placement.place (existing copies are kept where they are);
6. restart idle neurons past `defrag_after_cycles` load/unload cycles, where the
   caller can (`restartable`: the local neurons `helexa serve` supervises; an
   SSH-managed one is restarted by a host action); others get a warning.

Unpinned models are loaded by the gateway's cold loader: the plan only unloads them
(idle, or gone from models.toml) and reloads them when their dtype, path or revision
changed.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from helexa.config import ModelSpec
from helexa.fleet import placement
from helexa.fleet.state import FleetState, ModelLocation, ObservedNeuron
from helexa.reconcile.desired import DesiredState
from helexa.reconcile.observed import PRESENT_STATES, ObservedState, copy_neuron, snapshot
from helexa.reconcile.plan import Action, ActionKind, Cause, Plan, PlanError
from helexa.reconcile.simulate import simulate_load, simulate_unload


@dataclass
class _Steps:
    """Actions and errors as they are planned, numbered in plan order."""

    actions: list[Action] = field(default_factory=list)
    errors: list[PlanError] = field(default_factory=list)
    # Per neuron, the actions so far that free memory there: a later load waits for them.
    freeing: dict[str, list[str]] = field(default_factory=dict)

    def add(
        self,
        kind: ActionKind,
        neuron: str,
        model: str,
        cause: Cause,
        reason: str,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        depends_on: tuple[str, ...] = (),
    ) -> Action:
        action = Action(
            id=f"a{len(self.actions) + 1}",
            kind=kind,
            neuron=neuron,
            model=model,
            cause=cause,
            reason=reason,
            before=before,
            after=after,
            depends_on=depends_on,
        )
        self.actions.append(action)
        if kind != "load":
            self.freeing.setdefault(neuron, []).append(action.id)
        return action


def diff(
    desired: DesiredState,
    observed: ObservedState,
    *,
    now: float = 0.0,
    restartable: Collection[str] = (),
    restarted_by_host: Collection[str] = (),
) -> Plan:
    """The actions that make the observed fleet match the desired state, in order.

    `restartable`: neurons the caller can restart itself (a `restart` action when a
    defrag is due); `restarted_by_host`: neurons whose defrag the host plan carries."""
    sim = snapshot(observed.fleet)
    steps = _Steps()
    _unload_removed(desired, sim, steps)
    _unload_idle(desired, sim, steps, now)
    _reload_changed(desired, sim, steps)
    _unload_excess(desired, sim, steps)
    _load_missing(desired, sim, steps, now)
    defrag_warnings = _defrag(desired, observed.fleet, steps, restartable, restarted_by_host)
    warnings = tuple(
        f"neuron {name} is unreachable ({why}): what it holds is unknown"
        for name, why in observed.unreachable.items()
    ) + tuple(defrag_warnings)
    return Plan(
        generation=desired.generation,
        observed=observed.fingerprint(),
        actions=tuple(steps.actions),
        errors=tuple(steps.errors),
        warnings=warnings,
        created_at=now,
    )


def changed_fields(spec: ModelSpec, loc: ModelLocation) -> dict[str, tuple[str, str]]:
    """models.toml settings a loaded copy no longer matches: field -> (observed, desired)."""
    changes: dict[str, tuple[str, str]] = {}
    if spec.dtype != "auto" and loc.dtype and loc.dtype != spec.dtype:
        changes["dtype"] = (loc.dtype, spec.dtype)
    # Compared only where the neuron reports them: an older neuron (or a copy loaded
    # by hand without them) must not be reloaded on every plan.
    path = str(spec.path) if spec.path else None
    if loc.path is not None and loc.path != path:
        changes["path"] = (loc.path, path or "(hub)")
    if loc.revision is not None and loc.revision != spec.revision:
        changes["revision"] = (loc.revision, spec.revision)
    return changes


def present_copies(fleet: FleetState, model_id: str) -> list[ModelLocation]:
    return [
        loc
        for n in _managed(fleet)
        if (loc := n.models.get(model_id)) is not None and loc.state in PRESENT_STATES
    ]


def _managed(fleet: FleetState) -> list[ObservedNeuron]:
    return sorted((n for n in fleet.neurons.values() if n.managed), key=lambda n: n.name)


def _held(loc: ModelLocation) -> dict[str, Any]:
    return {"state": loc.state, "dtype": loc.dtype, "memory_mb": loc.memory_mb}


def _unload_removed(desired: DesiredState, sim: FleetState, steps: _Steps) -> None:
    """Copies of models models.toml no longer names; a failed load of one is cleared too,
    so a removed model disappears from every view (the neuron drops a failed row on unload)."""
    for neuron in _managed(sim):
        for loc in sorted(neuron.models.values(), key=lambda m: m.model_id):
            if loc.model_id in desired.specs or loc.state not in (*PRESENT_STATES, "failed"):
                continue
            effect = (
                f"clears its failed load on {neuron.name}"
                if loc.state == "failed"
                else f"frees {loc.memory_mb} MB on {neuron.name}"
            )
            steps.add(
                "unload",
                neuron.name,
                loc.model_id,
                "removed",
                f"not in models.toml; {effect}",
                before=_held(loc),
            )
            simulate_unload(sim, neuron.name, loc.model_id)


def _unload_idle(desired: DesiredState, sim: FleetState, steps: _Steps, now: float) -> None:
    """Unpinned copies idle past their keep_alive (a model's own, else [eviction]'s)."""
    for due in placement.idle_unloads(sim, desired.specs, desired.keep_alive, now):
        loc = sim.neurons[due.neuron].models[due.model_id]
        steps.add("unload", due.neuron, due.model_id, "keep_alive", due.reason, before=_held(loc))
        simulate_unload(sim, due.neuron, due.model_id)


def _defrag(
    desired: DesiredState,
    fleet: FleetState,
    steps: _Steps,
    restartable: Collection[str],
    restarted_by_host: Collection[str],
) -> list[str]:
    """Restart actions for idle neurons due a defrag that this plan leaves alone otherwise
    (judged on the fleet as observed: a neuron the plan changes is not idle)."""
    warnings: list[str] = []
    threshold = desired.defrag_after_cycles
    acted_on = {a.neuron for a in steps.actions}
    for name in placement.defrag_due(fleet, threshold):
        if name in acted_on or name in restarted_by_host:
            continue
        reason = placement.defrag_reason(fleet.neurons[name], threshold)
        if name in restartable:
            steps.add("restart", name, "*", "defrag", reason)
        else:
            warnings.append(f"neuron {name}: {reason}; restart it to defragment (not local)")
    return warnings


def _reload_changed(desired: DesiredState, sim: FleetState, steps: _Steps) -> None:
    for neuron in _managed(sim):
        for loc in sorted(neuron.models.values(), key=lambda m: m.model_id):
            spec = desired.specs.get(loc.model_id)
            if spec is None or loc.state != "loaded":
                continue
            changes = changed_fields(spec, loc)
            if not changes:
                continue
            need = placement.footprint(spec, sim, desired.weights_bytes.get(spec.id))
            trial = copy_neuron(neuron)
            trial_fleet = FleetState(neurons={neuron.name: trial})
            simulate_unload(trial_fleet, neuron.name, spec.id)
            what = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in sorted(changes.items()))
            if not placement.fits_on(spec, trial, need.memory_mb):
                steps.errors.append(
                    PlanError(
                        spec.id,
                        f"reload on {neuron.name} ({what}) would not fit: "
                        f"{trial.free_memory_mb} MB free after unloading < {need.memory_mb} MB",
                    )
                )
                continue
            steps.add(
                "reload",
                neuron.name,
                spec.id,
                "changed",
                f"{what} in models.toml; needs {need.describe()}",
                before=_held(loc),
                after={
                    "dtype": spec.dtype,
                    "memory_mb": need.memory_mb,
                    **{key: new for key, (_old, new) in changes.items() if key != "dtype"},
                },
                depends_on=tuple(steps.freeing.get(neuron.name, ())),
            )
            simulate_unload(sim, neuron.name, spec.id)
            simulate_load(sim, neuron.name, spec, need.memory_mb)
            sim.neurons[neuron.name].models[spec.id].state = "loaded"


def _unload_excess(desired: DesiredState, sim: FleetState, steps: _Steps) -> None:
    for spec in desired.pinned:
        copies = present_copies(sim, spec.id)
        surplus = len(copies) - spec.replicas
        if surplus <= 0:
            continue
        # Keep the busy and recently used copies; the rest go first.
        copies.sort(key=lambda c: (not c.idle, c.last_activity() or -math.inf, c.neuron))
        for loc in copies[:surplus]:
            steps.add(
                "unload",
                loc.neuron,
                spec.id,
                "excess",
                f"{len(copies)} copies loaded, replicas = {spec.replicas}",
                before=_held(loc),
            )
            simulate_unload(sim, loc.neuron, spec.id)


def _load_missing(desired: DesiredState, sim: FleetState, steps: _Steps, now: float) -> None:
    for spec in desired.pinned:
        have = len(present_copies(sim, spec.id))
        for replica in range(have + 1, spec.replicas + 1):
            decision = placement.place(
                spec,
                sim,
                desired.specs,
                desired.strategy,
                now=now,
                weights_bytes=desired.weights_bytes.get(spec.id),
            )
            if isinstance(decision, placement.NoPlacement):
                steps.errors.append(
                    PlanError(spec.id, f"replica {replica} of {spec.replicas}: {decision.reason}")
                )
                break
            for victim in decision.evict:
                loc = sim.neurons[decision.neuron].models[victim]
                steps.add(
                    "unload",
                    decision.neuron,
                    victim,
                    "evict",
                    f"evicted to make room for pinned {spec.id} (frees {loc.memory_mb} MB)",
                    before=_held(loc),
                )
                simulate_unload(sim, decision.neuron, victim)
            loc = simulate_load(sim, decision.neuron, spec, decision.footprint.memory_mb)
            steps.add(
                "load",
                decision.neuron,
                spec.id,
                "pinned",
                f"pinned, replica {replica} of {spec.replicas}: {decision.reason}",
                after={
                    "dtype": spec.dtype,
                    "memory_mb": decision.footprint.memory_mb,
                    "footprint": decision.footprint.source,
                    "devices": loc.devices,
                },
                depends_on=tuple(steps.freeing.get(decision.neuron, ())),
            )
