"""Placement and eviction: table rows for every placement rule (docs/gateway.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helexa.config.models import ModelSpec
from helexa.errors import NoFeasibleNeuron
from helexa.fleet.placement import (
    NoPlacement,
    PlacementDecision,
    Strategy,
    defrag_due,
    feasible,
    fits_on,
    footprint,
    idle_unloads,
    place,
)
from helexa.fleet.state import DeviceSnapshot, FleetState, ModelLocation, NeuronKind, ObservedNeuron
from helexa.protocol.neuron import ModelState

NOW = 1_000_000.0
MIN = 60.0


def make_spec(model_id: str, **fields: object) -> ModelSpec:
    """A real models.toml entry, validated like one read from a file."""
    return ModelSpec.model_validate({"id": model_id, **fields})


def gpu(total: int, free: int, index: int = 0) -> DeviceSnapshot:
    return DeviceSnapshot(index, f"gpu{index}", "cuda", memory_total_mb=total, memory_free_mb=free)


def loaded(
    model_id: str,
    memory_mb: int,
    idle_min: float = 1.0,
    *,
    in_flight: int = 0,
    devices: Sequence[int] = (0,),
    state: ModelState = "loaded",
) -> ModelLocation:
    return ModelLocation(
        model_id=model_id,
        neuron="",
        state=state,
        memory_mb=memory_mb,
        devices=list(devices),
        in_flight=in_flight,
        max_in_flight=4,
        loaded_at=NOW - 24 * 3600,
        last_used_at=NOW - idle_min * MIN,
    )


def node(
    name: str,
    devices: list[DeviceSnapshot],
    *models: ModelLocation,
    healthy: bool = True,
    kind: NeuronKind = "neuron",
    cycles: int = 0,
) -> ObservedNeuron:
    neuron = ObservedNeuron(
        name, f"http://{name}.test", kind=kind, healthy=healthy, devices=devices, cycles=cycles
    )
    neuron.starting = False  # a neuron made unhealthy here is down, not starting
    for loc in models:
        loc.neuron = name
        neuron.models[loc.model_id] = loc
    return neuron


def fleet(*neurons: ObservedNeuron) -> FleetState:
    return FleetState(neurons={n.name: n for n in neurons})


def known(*entries: ModelSpec) -> dict[str, ModelSpec]:
    return {s.id: s for s in entries}


def decide(
    spec: ModelSpec,
    state: FleetState,
    specs: Mapping[str, ModelSpec] | None = None,
    strategy: Strategy = "lru",
) -> PlacementDecision:
    result = place(spec, state, specs or {}, strategy=strategy, now=NOW)
    assert isinstance(result, PlacementDecision), result
    return result


def refuse(
    spec: ModelSpec, state: FleetState, specs: Mapping[str, ModelSpec] | None = None
) -> NoPlacement:
    result = place(spec, state, specs or {}, now=NOW)
    assert isinstance(result, NoPlacement), result
    return result


# --- ranking -------------------------------------------------------------------

RANKING = [
    pytest.param(
        [node("a", [gpu(24000, 10000)]), node("b", [gpu(24000, 2000)], loaded("old", 20000))],
        "a",
        (),
        id="free-fit-beats-eviction-even-with-less-total-memory",
    ),
    pytest.param(
        [node("a", [gpu(24000, 9000)]), node("b", [gpu(24000, 12000)])],
        "b",
        (),
        id="most-free-memory-wins",
    ),
    pytest.param(
        [node("b", [gpu(24000, 12000)]), node("a", [gpu(24000, 12000)])],
        "a",
        (),
        id="equal-free-memory-ties-by-name",
    ),
    pytest.param(
        [
            node("a", [gpu(24000, 1000)], loaded("x", 23000)),
            node("b", [gpu(24000, 3000)], loaded("y", 21000)),
        ],
        "b",
        ("y",),
        id="both-need-eviction-most-free-memory-wins",
    ),
    pytest.param(
        [node("a", [gpu(24000, 20000)], healthy=False), node("b", [gpu(24000, 9000)])],
        "b",
        (),
        id="unhealthy-neuron-skipped",
    ),
    pytest.param(
        [node("a", [gpu(80000, 80000)], kind="openai"), node("b", [gpu(24000, 9000)])],
        "b",
        (),
        id="foreign-openai-server-never-a-target",
    ),
]


@pytest.mark.parametrize(("neurons", "neuron", "evict"), RANKING)
def test_ranking(neurons: list[ObservedNeuron], neuron: str, evict: tuple[str, ...]) -> None:
    decision = decide(make_spec("new", vram_mb=8000), fleet(*neurons))
    assert (decision.neuron, decision.evict) == (neuron, evict)


def test_affinity_is_respected_even_when_another_neuron_has_more_room() -> None:
    state = fleet(node("a", [gpu(24000, 24000)]), node("b", [gpu(24000, 9000)]))
    assert decide(make_spec("new", vram_mb=8000, neurons=["b"]), state).neuron == "b"


def test_affinity_to_a_full_neuron_refuses_rather_than_going_elsewhere() -> None:
    state = fleet(node("a", [gpu(24000, 24000)]), node("b", [gpu(8000, 1000)]))
    refused = refuse(make_spec("new", vram_mb=8000, neurons=["b"]), state)
    assert "outside affinity" in refused.reasons["a"]
    assert "1000 MB free < 8000 MB" in refused.reasons["b"]
    assert not refused.retryable


def test_neuron_already_holding_the_model_is_not_a_target_for_another_copy() -> None:
    state = fleet(node("a", [gpu(24000, 20000)], loaded("m", 4000)), node("b", [gpu(24000, 9000)]))
    assert decide(make_spec("m", vram_mb=4000), state).neuron == "b"


# --- feasibility: devices ---------------------------------------------------------

DEVICES = [
    pytest.param(make_spec("m", vram_mb=4000, min_device_vram_mb=16000), ["big"], id="min-vram"),
    pytest.param(make_spec("m", vram_mb=4000, devices=2), ["two"], id="two-devices"),
    pytest.param(
        make_spec("m", vram_mb=4000, devices=2, min_device_vram_mb=16000), [], id="two-big"
    ),
]


@pytest.mark.parametrize(("spec", "expected"), DEVICES)
def test_feasible_checks_device_count_and_per_device_total(
    spec: ModelSpec, expected: list[str]
) -> None:
    neurons = [
        node("small", [gpu(8000, 8000)]),
        node("big", [gpu(24000, 24000)]),
        node("two", [gpu(12000, 12000, 0), gpu(12000, 12000, 1)]),
    ]
    ok, rejected = feasible(spec, neurons)
    assert [n.name for n in ok] == expected
    assert set(rejected) == {"small", "big", "two"} - set(expected)


def test_one_device_model_needs_the_room_on_a_single_device() -> None:
    two = node("two", [gpu(12000, 6000, 0), gpu(12000, 6000, 1)])
    assert not fits_on(make_spec("m", vram_mb=10000), two, 10000)
    assert fits_on(make_spec("m", vram_mb=10000, devices=2), two, 10000)


def test_eviction_frees_memory_on_the_victims_own_device() -> None:
    # The victim sits on gpu1; evicting it does not help a model that must fit gpu0 alone.
    two = node("two", [gpu(12000, 2000, 0), gpu(12000, 2000, 1)], loaded("v", 10000, devices=[1]))
    decision = decide(make_spec("m", vram_mb=11000), fleet(two))
    assert decision.evict == ("v",)
    refused = refuse(make_spec("m", vram_mb=13000), fleet(two))
    assert "not enough" in refused.reasons["two"]


# --- eviction ---------------------------------------------------------------------


def one_gpu(*models: ModelLocation, free: int = 2000) -> FleetState:
    return fleet(node("g", [gpu(24000, free)], *models))


def test_equal_priority_models_swap_both_ways() -> None:
    a = make_spec("A", vram_mb=20000, priority=100)
    b = make_spec("B", vram_mb=20000, priority=100)
    with_a = one_gpu(loaded("A", 20000))
    assert decide(b, with_a, known(a, b)).evict == ("A",)
    with_b = one_gpu(loaded("B", 20000))
    assert decide(a, with_b, known(a, b)).evict == ("B",)


def test_higher_class_is_never_displaced_by_a_lower_one() -> None:
    high = make_spec("high", vram_mb=20000, priority=200)
    low = make_spec("low", vram_mb=20000, priority=100)
    refused = refuse(low, one_gpu(loaded("high", 20000)), known(high, low))
    assert "higher priority (200 > 100)" in refused.reasons["g"]
    # ...while the higher class displaces the lower one.
    assert decide(high, one_gpu(loaded("low", 20000)), known(high, low)).evict == ("low",)


def test_pinned_model_is_never_evicted() -> None:
    pinned = make_spec("p", vram_mb=20000, pin=True, priority=0)
    incoming = make_spec("new", vram_mb=20000, priority=1000)
    refused = refuse(incoming, one_gpu(loaded("p", 20000)), known(pinned, incoming))
    assert "p is pinned" in refused.reasons["g"]
    assert not refused.retryable  # nothing will change by itself


def test_busy_model_is_drained_not_cut() -> None:
    refused = refuse(make_spec("new", vram_mb=20000), one_gpu(loaded("busy", 20000, in_flight=2)))
    assert "busy (2 in flight" in refused.reasons["g"]
    assert refused.retryable
    error = refused.to_error()
    assert isinstance(error, NoFeasibleNeuron)
    assert error.status == 503 and error.retry_after is not None


def test_idle_model_is_evicted_around_a_busy_one() -> None:
    state = one_gpu(loaded("busy", 10000, in_flight=1), loaded("idle", 12000), free=2000)
    assert decide(make_spec("new", vram_mb=12000), state).evict == ("idle",)


def test_models_not_fully_loaded_are_not_victims() -> None:
    state = one_gpu(loaded("coming", 20000, state="loading"))
    assert "nothing evictable" in refuse(make_spec("new", vram_mb=20000), state).reasons["g"]


def test_fewest_victims_one_big_idle_model_beats_two_small_older_ones() -> None:
    # LRU order is small1, small2, big; either {big} or {small1, small2} frees enough.
    state = one_gpu(
        loaded("small1", 4000, idle_min=30),
        loaded("small2", 4000, idle_min=20),
        loaded("big", 8000, idle_min=1),
        free=6000,
    )
    decision = decide(make_spec("new", vram_mb=13000), state)
    assert decision.evict == ("big",)


def test_among_equally_few_victims_strategy_order_decides() -> None:
    state = one_gpu(loaded("recent", 20000, idle_min=1), loaded("stale", 20000, idle_min=50))
    state.neurons["g"].devices = [gpu(48000, 2000)]
    assert decide(make_spec("new", vram_mb=20000), state).evict == ("stale",)


def test_several_victims_are_listed_in_strategy_order() -> None:
    state = one_gpu(
        loaded("m1", 5000, idle_min=2), loaded("m2", 5000, idle_min=9), loaded("m3", 5000, 5)
    )
    decision = decide(make_spec("new", vram_mb=16000), state)
    assert decision.evict == ("m2", "m3", "m1")


STRATEGIES = [
    pytest.param("lru", ("cheap_recent", "valued_stale"), ("valued_stale",), id="lru-oldest"),
    pytest.param("priority", ("cheap_recent", "valued_stale"), ("cheap_recent",), id="prio-low"),
    pytest.param("priority", ("cheap_recent", "cheap_stale"), ("cheap_stale",), id="prio-then-lru"),
]


@pytest.mark.parametrize(("strategy", "present", "evicted"), STRATEGIES)
def test_lru_and_priority_strategies(
    strategy: Strategy, present: tuple[str, ...], evicted: tuple[str, ...]
) -> None:
    entries = known(
        make_spec("cheap_recent", priority=10),
        make_spec("cheap_stale", priority=10),
        make_spec("valued_stale", priority=50),
        make_spec("new", vram_mb=20000, priority=100),
    )
    idle = {"cheap_recent": 1.0, "cheap_stale": 40.0, "valued_stale": 30.0}
    state = fleet(
        node("g", [gpu(48000, 2000)], *(loaded(m, 20000, idle_min=idle[m]) for m in present))
    )
    assert decide(entries["new"], state, entries, strategy=strategy).evict == evicted


def test_models_unknown_to_models_toml_are_the_lowest_class() -> None:
    entries = known(make_spec("mine", priority=1), make_spec("new", vram_mb=20000, priority=1))
    state = fleet(
        node("g", [gpu(48000, 2000)], loaded("mine", 20000, 90), loaded("stray", 20000, 1))
    )
    assert decide(entries["new"], state, entries, strategy="priority").evict == ("stray",)


# --- footprint --------------------------------------------------------------------


def test_footprint_precedence_measured_then_vram_then_weights_then_unknown() -> None:
    state = FleetState()
    spec = make_spec("m", vram_mb=9000, dtype="bfloat16")
    bare = make_spec("m", dtype="bfloat16")
    weights = 10 * 2**30  # 10 GiB of safetensors
    assert footprint(bare, state) == footprint(bare, state, None)
    assert footprint(bare, state).source == "unknown"
    assert footprint(bare, state, weights).memory_mb == math.ceil(10 * 1024 * 1.2)
    assert footprint(spec, state, weights).memory_mb == 9000
    state.memory_history[("m", "bfloat16")] = 7321
    assert (footprint(spec, state, weights).memory_mb, footprint(spec, state).source) == (
        7321,
        "measured",
    )
    # A measurement in another dtype says nothing about this one.
    assert footprint(make_spec("m", vram_mb=9000, dtype="float32"), state).source == "vram_mb"


def test_measured_footprint_drives_the_decision() -> None:
    state = fleet(node("g", [gpu(24000, 8000)]))
    spec = make_spec("m", vram_mb=20000, dtype="bfloat16")
    assert isinstance(place(spec, state, {}, now=NOW), NoPlacement)
    state.memory_history[("m", "bfloat16")] = 7000
    decision = decide(spec, state)
    assert decision.footprint.source == "measured"
    assert "8000 MB free >= 7000 MB" in decision.reason


def test_unknown_footprint_places_by_free_memory_and_says_so() -> None:
    state = fleet(node("a", [gpu(24000, 100)]), node("b", [gpu(24000, 200)]))
    decision = decide(make_spec("m"), state)
    assert decision.neuron == "b"
    assert "footprint unknown" in decision.reason


# --- reasons an operator reads -------------------------------------------------------


def test_reasons_name_the_neuron_memory_and_victims() -> None:
    fits = decide(make_spec("m", vram_mb=8000), fleet(node("gpu-a", [gpu(24000, 12000)])))
    assert fits.reason == "fits in free memory on gpu-a (12000 MB free >= 8000 MB, vram_mb)"
    state = fleet(node("gpu-b", [gpu(24000, 3000)], loaded("qwen-small", 9000, idle_min=12)))
    evicts = decide(make_spec("m", vram_mb=8000), state)
    assert evicts.reason.startswith("evicts qwen-small (LRU, idle 12m) on gpu-b to free 9000 MB")
    empty = place(make_spec("m", vram_mb=1), FleetState(), {})
    assert isinstance(empty, NoPlacement) and "no neurons" in empty.reason


# --- keep_alive and defrag ---------------------------------------------------------


def test_idle_unloads_past_keep_alive_only() -> None:
    entries = known(
        make_spec("short", keep_alive=5 * MIN),
        make_spec("forever", keep_alive=math.inf),
        make_spec("pinned", keep_alive=1.0, pin=True),
        make_spec("default"),
    )
    state = fleet(
        node(
            "g",
            [gpu(80000, 0)],
            loaded("short", 1000, idle_min=6),
            loaded("forever", 1000, idle_min=10_000),
            loaded("pinned", 1000, idle_min=100),
            loaded("default", 1000, idle_min=29),
            loaded("busy-short", 1000, idle_min=60, in_flight=1),
            loaded("stray", 1000, idle_min=31),
        )
    )
    entries["busy-short"] = make_spec("busy-short", keep_alive=1.0)
    unloads = idle_unloads(state, entries, default_keep_alive=30 * MIN, now=NOW)
    assert [(u.neuron, u.model_id) for u in unloads] == [("g", "short"), ("g", "stray")]
    assert unloads[0].reason == "idle 6m on g >= keep_alive 5m"
    assert idle_unloads(state, entries, default_keep_alive=math.inf, now=NOW)[0].model_id == "short"


def test_defrag_due_for_idle_healthy_neurons_past_the_threshold() -> None:
    state = fleet(
        node("old", [gpu(1, 1)], cycles=50),
        node("young", [gpu(1, 1)], cycles=49),
        node("busy", [gpu(1, 1)], loaded("m", 1, in_flight=1), cycles=80),
        node("down", [gpu(1, 1)], healthy=False, cycles=80),
        node("foreign", [gpu(1, 1)], kind="openai", cycles=80),
    )
    assert defrag_due(state, 50) == ["old"]
    assert defrag_due(state, 0) == []


# --- invariants over random single-GPU fleets ------------------------------------

MODEL_FACTS = st.tuples(
    st.integers(1000, 12000),  # memory_mb
    st.booleans(),  # pinned
    st.sampled_from([0, 50, 100]),  # priority
    st.sampled_from([0, 0, 1]),  # in flight
    st.integers(0, 500),  # idle minutes
)
NEURON_FACTS = st.tuples(st.integers(0, 24000), st.lists(MODEL_FACTS, max_size=5))


@settings(max_examples=150, deadline=None)
@given(
    neurons=st.lists(NEURON_FACTS, min_size=1, max_size=3),
    need=st.integers(1000, 30000),
    priority=st.sampled_from([0, 50, 100]),
    strategy=st.sampled_from(["lru", "priority"]),
)
def test_placement_invariants(
    neurons: list[tuple[int, list[tuple[int, bool, int, int, int]]]],
    need: int,
    priority: int,
    strategy: Strategy,
) -> None:
    entries: dict[str, ModelSpec] = {}
    state = FleetState()
    displaceable: dict[str, dict[str, int]] = {}  # neuron -> model -> memory, by the rules
    for n, (free, models) in enumerate(neurons):
        name = f"n{n}"
        locs = []
        for m, (memory, pinned, prio, in_flight, idle) in enumerate(models):
            model_id = f"{name}-m{m}"
            entries[model_id] = make_spec(model_id, pin=pinned, priority=prio)
            locs.append(loaded(model_id, memory, idle, in_flight=in_flight))
            if not pinned and prio <= priority and in_flight == 0:
                displaceable.setdefault(name, {})[model_id] = memory
        state.neurons[name] = node(name, [gpu(24000, free)], *locs)
    spec = make_spec("new", vram_mb=need, priority=priority)
    result = place(spec, state, entries, strategy=strategy, now=NOW)
    free_now = {name: n.free_memory_mb for name, n in state.neurons.items()}
    if isinstance(result, NoPlacement):
        for name in state.neurons:
            assert free_now[name] + sum(displaceable.get(name, {}).values()) < need
        return
    chosen = displaceable.get(result.neuron, {})
    assert set(result.evict) <= set(chosen)
    assert free_now[result.neuron] + sum(chosen[v] for v in result.evict) >= need
    # No smaller set of displaceable models would have made room there.
    for smaller in range(len(result.evict)):
        for victims in combinations(chosen, smaller):
            assert free_now[result.neuron] + sum(chosen[v] for v in victims) < need
    fitting_now = [name for name, free in free_now.items() if free >= need]
    if fitting_now:
        assert result.evict == ()
        assert free_now[result.neuron] == max(free_now[name] for name in fitting_now)


def test_a_down_neuron_makes_a_refusal_worth_retrying() -> None:
    state = fleet(node("a", [gpu(24000, 24000)], healthy=False), node("b", [gpu(8000, 1000)]))
    refused = refuse(make_spec("new", vram_mb=8000), state)
    assert refused.reasons["a"] == "unhealthy" and refused.retryable
    state.neurons["a"].starting = True
    refused = refuse(make_spec("new", vram_mb=8000), state)
    assert refused.reasons["a"] == "starting (has not answered yet)" and refused.retryable
