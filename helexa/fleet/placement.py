"""Placement and eviction (docs/gateway.md, placement): pure functions over FleetState.

- feasible: healthy, managed (kind="neuron"), inside the model's `neurons`
  affinity, not already holding it, and `devices` devices each with at least
  `min_device_vram_mb` total.
- footprint: measured memory of this model+dtype > `vram_mb` > weights x 1.2
  > unknown (0, noted in the reason).
- rank: fits in free memory now > fits after evicting > most free memory > name.
- displaceable: loaded, not pinned, priority <= the incoming model's, idle.
  Busy models are never chosen: they would have to be drained, which can
  take as long as the longest stream, so the caller gets a retryable
  NoPlacement instead and tries again once they are idle.
- eviction: the fewest victims that make it fit; among equally small sets,
  the one that comes first in strategy order (`lru`: least recently used;
  `priority`: lowest class, LRU within it), evicted in that order.

Memory is modelled per device: a model needing `devices` GPUs fits when the
free memory of the best `devices` eligible devices covers its footprint, and
an evicted model frees its memory on the devices it reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal

from helexa.config.durations import format_duration
from helexa.config.models import ModelSpec
from helexa.errors import NoFeasibleNeuron
from helexa.fleet.state import FleetState, ModelLocation, ObservedNeuron

Strategy = Literal["lru", "priority"]
FootprintSource = Literal["measured", "vram_mb", "weights", "unknown"]

# Safetensors size -> loaded footprint: weights plus activations/KV headroom.
WEIGHTS_OVERHEAD = 1.2
# Models on the neuron that models.toml does not know: the lowest class, never pinned.
UNKNOWN_PRIORITY = 0
# Exact minimal-set search is exponential; past this many candidates take them greedily.
MAX_EXACT_CANDIDATES = 16


@dataclass(frozen=True)
class Footprint:
    memory_mb: int
    source: FootprintSource

    def describe(self) -> str:
        if self.source == "unknown":
            return "footprint unknown (no measurement, vram_mb or weights size), assumed 0 MB"
        return f"{self.memory_mb} MB from {self.source}"


@dataclass(frozen=True)
class PlacementDecision:
    model_id: str
    neuron: str
    evict: tuple[str, ...]  # unload in this order, re-reading free memory after each
    footprint: Footprint
    reason: str


@dataclass(frozen=True)
class NoPlacement:
    model_id: str
    footprint: Footprint
    reasons: Mapping[str, str]  # neuron name -> why not there
    # Worth retrying soon: a busy model may go idle, a down neuron may come back.
    retryable: bool = True

    @property
    def reason(self) -> str:
        if not self.reasons:
            return f"no place for {self.model_id}: no neurons in the fleet"
        parts = "; ".join(f"{name}: {why}" for name, why in sorted(self.reasons.items()))
        return f"no place for {self.model_id} ({self.footprint.describe()}): {parts}"

    def to_error(self) -> NoFeasibleNeuron:
        return NoFeasibleNeuron(self.reason)


@dataclass(frozen=True)
class IdleUnload:
    neuron: str
    model_id: str
    reason: str


@dataclass
class _Candidate:
    neuron: ObservedNeuron
    free_mb: int  # usable by this model now: best `devices` eligible devices
    fits: bool = True  # as is, or after evicting `evict`
    evict: list[ModelLocation] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # why it does not fit, when it does not
    busy_blocked: bool = False  # a busy model is in the way: room may come once it drains


def footprint(spec: ModelSpec, fleet: FleetState, weights_bytes: int | None = None) -> Footprint:
    """How much memory a load of `spec` will take, best source first."""
    measured = fleet.measured_memory_mb(spec.id, spec.dtype)
    if measured is not None:
        return Footprint(measured, "measured")
    if spec.vram_mb:
        return Footprint(spec.vram_mb, "vram_mb")
    if weights_bytes:
        return Footprint(math.ceil(weights_bytes / 2**20 * WEIGHTS_OVERHEAD), "weights")
    return Footprint(0, "unknown")


def eligible_devices(spec: ModelSpec, neuron: ObservedNeuron) -> list[int]:
    """Indices of the neuron's devices big enough (total memory) for one shard of `spec`."""
    return [d.index for d in neuron.devices if d.memory_total_mb >= spec.min_device_vram_mb]


def usable_free_mb(spec: ModelSpec, neuron: ObservedNeuron, free: Mapping[int, int]) -> int:
    """Free memory the model could use: the best `devices` eligible devices together."""
    eligible = sorted((free[i] for i in eligible_devices(spec, neuron)), reverse=True)
    return sum(eligible[: spec.devices])


def fits_on(spec: ModelSpec, neuron: ObservedNeuron, footprint_mb: int) -> bool:
    """Whether `spec` fits in the neuron's free memory now (re-check after each unload)."""
    return usable_free_mb(spec, neuron, _free_by_device(neuron)) >= footprint_mb


def feasible(
    spec: ModelSpec, neurons: Iterable[ObservedNeuron], *, new_copy: bool = True
) -> tuple[list[ObservedNeuron], dict[str, str]]:
    """Neurons that could hold `spec` (memory aside), and why the others cannot.

    With `new_copy` (placement), a neuron already holding it is not a target;
    without (the catalogue's `feasible_on`), it is.
    """
    ok: list[ObservedNeuron] = []
    rejected: dict[str, str] = {}
    for neuron in neurons:
        why = _infeasible_reason(spec, neuron, new_copy)
        if why is None:
            ok.append(neuron)
        else:
            rejected[neuron.name] = why
    return ok, rejected


def place(
    spec: ModelSpec,
    fleet: FleetState,
    specs: Mapping[str, ModelSpec],
    strategy: Strategy = "lru",
    now: float = 0.0,
    weights_bytes: int | None = None,
) -> PlacementDecision | NoPlacement:
    """Choose the neuron for a new copy of `spec`, and what to evict there first.

    `specs` maps model ids to their models.toml entries (pin, priority of the
    models already loaded); `now` (unix seconds) only feeds the idle times in
    the reasons.
    """
    need = footprint(spec, fleet, weights_bytes)
    neurons, reasons = feasible(spec, fleet.neurons.values())
    fitting: list[_Candidate] = []
    evicting: list[_Candidate] = []
    blocked: list[_Candidate] = []
    for neuron in neurons:
        candidate = _plan_neuron(spec, neuron, need.memory_mb, specs, strategy)
        if not candidate.fits:
            reasons[neuron.name] = _blocked_reason(candidate, need.memory_mb)
            blocked.append(candidate)
        elif candidate.evict:
            evicting.append(candidate)
        else:
            fitting.append(candidate)
    ranked = sorted(fitting, key=_rank_key) + sorted(evicting, key=_rank_key)
    if not ranked:
        transient = any(c.busy_blocked for c in blocked) or any(
            not n.healthy for n in fleet.neurons.values() if n.managed
        )
        return NoPlacement(spec.id, need, reasons, retryable=transient)
    best = ranked[0]
    return PlacementDecision(
        model_id=spec.id,
        neuron=best.neuron.name,
        evict=tuple(loc.model_id for loc in best.evict),
        footprint=need,
        reason=_decision_reason(best, need, specs, strategy, now),
    )


def idle_unloads(
    fleet: FleetState,
    specs: Mapping[str, ModelSpec],
    default_keep_alive: float,
    now: float,
) -> list[IdleUnload]:
    """Loaded, idle, unpinned models whose idle time passed their keep_alive (inf = never)."""
    out: list[IdleUnload] = []
    for neuron in sorted(fleet.neurons.values(), key=lambda n: n.name):
        if not neuron.managed:
            continue
        for loc in sorted(neuron.models.values(), key=lambda m: m.model_id):
            spec = specs.get(loc.model_id)
            if spec is not None and spec.pin:
                continue
            keep_alive = default_keep_alive
            if spec is not None and spec.keep_alive is not None:
                keep_alive = spec.keep_alive
            since = loc.last_activity()
            if loc.state != "loaded" or not loc.idle or since is None or math.isinf(keep_alive):
                continue
            idle_s = now - since
            if idle_s >= keep_alive:
                reason = (
                    f"idle {_duration(idle_s)} on {neuron.name} "
                    f">= keep_alive {_duration(keep_alive)}"
                )
                out.append(IdleUnload(neuron.name, loc.model_id, reason))
    return out


def defrag_reason(neuron: ObservedNeuron, threshold: int) -> str:
    return f"{neuron.cycles} load/unload cycles >= defrag_after_cycles {threshold}, idle"


def defrag_due(fleet: FleetState, threshold: int) -> list[str]:
    """Healthy, idle neurons with at least `threshold` load/unload cycles (0 = off)."""
    if threshold <= 0:
        return []
    return sorted(
        n.name
        for n in fleet.neurons.values()
        if n.managed and n.healthy and n.is_idle() and n.cycles >= threshold
    )


# --- internals -----------------------------------------------------------------


def _infeasible_reason(spec: ModelSpec, neuron: ObservedNeuron, new_copy: bool) -> str | None:
    if not neuron.managed:
        return "not managed by helexa (kind=openai)"
    if not neuron.healthy:
        return "starting (has not answered yet)" if neuron.health == "starting" else "unhealthy"
    if spec.neurons and neuron.name not in spec.neurons:
        return f"outside affinity {sorted(spec.neurons)}"
    held = neuron.models.get(spec.id)
    if new_copy and held is not None and held.state in ("loading", "loaded"):
        return f"already {held.state} here"
    eligible = eligible_devices(spec, neuron)
    if len(eligible) < spec.devices:
        return (
            f"needs {spec.devices} device(s) with >= {spec.min_device_vram_mb} MB total, "
            f"has {len(eligible)}"
        )
    return None


def _free_by_device(neuron: ObservedNeuron) -> dict[int, int]:
    return {d.index: d.memory_free_mb for d in neuron.devices}


def _freed_by(loc: ModelLocation, neuron: ObservedNeuron) -> dict[int, float]:
    """Memory an unload of `loc` gives back, per device (spread evenly over its devices)."""
    known = {d.index for d in neuron.devices}
    on = [i for i in loc.devices if i in known] or sorted(known)
    if not on:
        return {}
    share = loc.memory_mb / len(on)
    return dict.fromkeys(on, share)


def _fits_after(
    spec: ModelSpec, neuron: ObservedNeuron, victims: Sequence[ModelLocation], need_mb: int
) -> bool:
    free: dict[int, float] = {i: float(mb) for i, mb in _free_by_device(neuron).items()}
    for victim in victims:
        for index, mb in _freed_by(victim, neuron).items():
            free[index] += mb
    return usable_free_mb(spec, neuron, {i: math.floor(mb) for i, mb in free.items()}) >= need_mb


def _spec_facts(model_id: str, specs: Mapping[str, ModelSpec]) -> tuple[bool, int]:
    spec = specs.get(model_id)
    return (spec.pin, spec.priority) if spec is not None else (False, UNKNOWN_PRIORITY)


def _strategy_key(
    loc: ModelLocation, specs: Mapping[str, ModelSpec], strategy: Strategy
) -> tuple[float, ...]:
    last = loc.last_activity()
    recency = last if last is not None else -math.inf  # never used: evict first
    if strategy == "priority":
        return (float(_spec_facts(loc.model_id, specs)[1]), recency)
    return (recency,)


def _plan_neuron(
    spec: ModelSpec,
    neuron: ObservedNeuron,
    need_mb: int,
    specs: Mapping[str, ModelSpec],
    strategy: Strategy,
) -> _Candidate:
    """How `spec` would fit on a feasible neuron: as is, after evicting, or not (and why)."""
    free_now = usable_free_mb(spec, neuron, _free_by_device(neuron))
    candidate = _Candidate(neuron=neuron, free_mb=free_now)
    if free_now >= need_mb:
        return candidate
    displaceable: list[ModelLocation] = []
    for loc in neuron.models.values():
        if loc.state != "loaded":
            continue
        pinned, priority = _spec_facts(loc.model_id, specs)
        if pinned:
            candidate.blocked.append(f"{loc.model_id} is pinned")
        elif priority > spec.priority:
            candidate.blocked.append(
                f"{loc.model_id} has higher priority ({priority} > {spec.priority})"
            )
        elif not loc.idle:
            candidate.busy_blocked = True
            candidate.blocked.append(
                f"{loc.model_id} is busy ({loc.in_flight} in flight, {loc.queued} queued; "
                "drained, never cut)"
            )
        else:
            displaceable.append(loc)
    displaceable.sort(key=lambda loc: (*_strategy_key(loc, specs, strategy), loc.model_id))
    victims = _fewest_victims(spec, neuron, displaceable, need_mb)
    if victims is not None:
        candidate.evict = victims
        candidate.blocked = []
        return candidate
    candidate.fits = False
    if displaceable:
        names = ", ".join(loc.model_id for loc in displaceable)
        candidate.blocked.append(f"evicting every idle model ({names}) is not enough")
    return candidate


def _fewest_victims(
    spec: ModelSpec, neuron: ObservedNeuron, ordered: list[ModelLocation], need_mb: int
) -> list[ModelLocation] | None:
    """The smallest set of `ordered` whose eviction makes room; first in strategy order."""
    if not _fits_after(spec, neuron, ordered, need_mb):
        return None
    if len(ordered) > MAX_EXACT_CANDIDATES:
        taken: list[ModelLocation] = []
        for loc in ordered:
            taken.append(loc)
            if _fits_after(spec, neuron, taken, need_mb):
                return taken
        return None
    # combinations() of an ordered list yields index-lexicographic order, so the
    # first fitting set of each size is the one earliest in strategy order.
    for size in range(1, len(ordered) + 1):
        for victims in combinations(ordered, size):
            if _fits_after(spec, neuron, victims, need_mb):
                return list(victims)
    return None


def _rank_key(candidate: _Candidate) -> tuple[int, str]:
    return (-candidate.free_mb, candidate.neuron.name)


def _blocked_reason(candidate: _Candidate, need_mb: int) -> str:
    blockers = ", ".join(sorted(candidate.blocked)) or "no loaded models to evict"
    return f"{candidate.free_mb} MB free < {need_mb} MB needed and nothing evictable ({blockers})"


def _decision_reason(
    best: _Candidate,
    need: Footprint,
    specs: Mapping[str, ModelSpec],
    strategy: Strategy,
    now: float,
) -> str:
    where = best.neuron.name
    if not best.evict:
        if need.source == "unknown":
            return f"{need.describe()}; most free memory on {where} ({best.free_mb} MB free)"
        return (
            f"fits in free memory on {where} ({best.free_mb} MB free >= {need.memory_mb} MB, "
            f"{need.source})"
        )
    victims = ", ".join(_victim_label(loc, specs, strategy, now) for loc in best.evict)
    freed = sum(loc.memory_mb for loc in best.evict)
    return (
        f"evicts {victims} on {where} to free {freed} MB "
        f"({best.free_mb} MB free, needs {need.memory_mb} MB, {need.source})"
    )


def _victim_label(
    loc: ModelLocation, specs: Mapping[str, ModelSpec], strategy: Strategy, now: float
) -> str:
    last = loc.last_activity()
    idle = f"idle {_duration(now - last)}" if last is not None else "never used"
    if strategy == "priority":
        return f"{loc.model_id} (priority {_spec_facts(loc.model_id, specs)[1]}, {idle})"
    return f"{loc.model_id} (LRU, {idle})"


def _duration(seconds: float) -> str:
    """Whole seconds are precise enough for an operator: "12m30s", "forever"."""
    return format_duration(seconds if math.isinf(seconds) else max(0, int(seconds)))
