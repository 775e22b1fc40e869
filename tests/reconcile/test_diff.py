"""diff(desired, observed): the table of cases from the Reconciler issue, plus ordering."""

from __future__ import annotations

from helexa.fleet.state import FleetState
from helexa.reconcile.diff import diff
from helexa.reconcile.plan import Plan
from tests.reconcile.fleets import desired, fleet, hold, observed, spec


def steps(plan: Plan) -> list[tuple[str, str, str, str]]:
    return [(a.kind, a.neuron, a.model, a.cause) for a in plan.actions]


def test_pinning_a_model_loads_it_where_most_memory_is_free() -> None:
    plan = diff(desired(spec("m", pin=True, vram_mb=500)), observed(fleet(a=1000, b=2000)))
    assert steps(plan) == [("load", "b", "m", "pinned")]
    load = plan.actions[0]
    assert "replica 1 of 1" in load.reason
    assert "2000 MB free >= 500 MB" in load.reason
    assert load.after == {"dtype": "auto", "memory_mb": 500, "footprint": "vram_mb", "devices": [0]}
    assert not plan.errors


def test_raising_replicas_adds_copies_and_keeps_the_existing_one() -> None:
    state = hold(fleet(a=1000, b=1000, c=1000), "a", "m", 400)
    plan = diff(desired(spec("m", pin=True, vram_mb=400, replicas=3)), observed(state))
    assert steps(plan) == [("load", "b", "m", "pinned"), ("load", "c", "m", "pinned")]
    assert "replica 2 of 3" in plan.actions[0].reason
    assert "replica 3 of 3" in plan.actions[1].reason


def test_changing_dtype_reloads_the_copy_in_place() -> None:
    state = hold(fleet(a=1000), "a", "m", 400, dtype="float32")
    plan = diff(desired(spec("m", pin=True, vram_mb=300, dtype="bfloat16")), observed(state))
    assert steps(plan) == [("reload", "a", "m", "changed")]
    reload = plan.actions[0]
    assert "dtype float32 -> bfloat16" in reload.reason
    assert reload.before == {"state": "loaded", "dtype": "float32", "memory_mb": 400}
    assert reload.after == {"dtype": "bfloat16", "memory_mb": 300}
    assert plan.counts()["change"] == 1


def test_a_new_path_or_revision_reloads_a_copy_that_reports_them() -> None:
    state = hold(fleet(a=1000), "a", "m", 400, dtype="float32")
    copy = state.neurons["a"].models["m"]
    moved = spec("m", pin=True, vram_mb=300, dtype="float32", path="/srv/new", revision="v2")
    assert diff(desired(moved), observed(state)).actions == ()  # not reported: left alone
    copy.path, copy.revision = "/srv/old", "main"
    plan = diff(desired(moved), observed(state))
    assert steps(plan) == [("reload", "a", "m", "changed")]
    assert "path /srv/old -> /srv/new, revision main -> v2" in plan.actions[0].reason
    assert plan.actions[0].after == {
        "dtype": "float32",
        "memory_mb": 300,
        "path": "/srv/new",
        "revision": "v2",
    }
    copy.path, copy.revision = "/srv/new", "v2"
    assert diff(desired(moved), observed(state)).actions == ()


def test_dtype_auto_matches_whatever_the_neuron_chose() -> None:
    state = hold(fleet(a=1000), "a", "m", 400, dtype="float32")
    assert diff(desired(spec("m", pin=True, dtype="auto")), observed(state)).actions == ()


def test_removing_a_model_from_models_toml_unloads_it_as_destructive() -> None:
    state = hold(hold(fleet(a=1000), "a", "gone", 300), "a", "kept", 100)
    plan = diff(desired(spec("kept")), observed(state))
    assert steps(plan) == [("unload", "a", "gone", "removed")]
    assert plan.actions[0].destructive
    assert plan.actions[0].reason == "not in models.toml; frees 300 MB on a"


def test_a_failed_load_of_a_removed_model_is_cleared() -> None:
    # So the model leaves every view: the neuron drops a failed row when asked to unload it.
    state = hold(fleet(a=1000), "a", "typo", 0, status="failed")
    plan = diff(desired(spec("kept")), observed(state))
    assert ("unload", "a", "typo", "removed") in steps(plan)
    (clear,) = [a for a in plan.actions if a.model == "typo"]
    assert clear.reason == "not in models.toml; clears its failed load on a"


def test_affinity_to_a_full_neuron_evicts_an_unpinned_model_first() -> None:
    state = hold(fleet(a=1000, b=4000), "a", "idle-one", 800)
    specs = (spec("idle-one"), spec("m", pin=True, vram_mb=600, neurons=["a"]))
    plan = diff(desired(*specs), observed(state))
    assert steps(plan) == [("unload", "a", "idle-one", "evict"), ("load", "a", "m", "pinned")]
    evict, load = plan.actions
    assert load.depends_on == (evict.id,)
    assert not evict.destructive  # an eviction, not a removal
    assert "evicts idle-one" in load.reason


def test_an_impossible_placement_is_a_plan_error_with_no_action() -> None:
    state = hold(fleet(a=1000), "a", "pinned-big", 900)
    specs = (spec("pinned-big", pin=True), spec("m", pin=True, vram_mb=600))
    plan = diff(desired(*specs), observed(state))
    assert plan.actions == ()
    [error] = plan.errors
    assert error.model == "m"
    assert "replica 1 of 1" in error.message and "pinned-big is pinned" in error.message


def test_a_converged_fleet_plans_nothing() -> None:
    state = hold(hold(fleet(a=1000, b=1000), "a", "m", 400), "b", "m", 400)
    specs = (spec("m", pin=True, replicas=2, dtype="float32"), spec("cold"))
    plan = diff(desired(*specs), observed(state))
    assert plan.actions == () and plan.errors == () and not plan.has_changes


def test_memory_fits_are_checked_against_the_state_after_earlier_actions() -> None:
    # Each fits alone; after the first is planned the second no longer does.
    specs = (spec("m1", pin=True, vram_mb=700, priority=5), spec("m2", pin=True, vram_mb=700))
    plan = diff(desired(*specs), observed(fleet(a=1000)))
    assert steps(plan) == [("load", "a", "m1", "pinned")]
    assert [e.model for e in plan.errors] == ["m2"]
    assert "300 MB free < 700 MB needed" in plan.errors[0].message


def test_a_removal_frees_memory_for_a_load_that_waits_for_it() -> None:
    state = hold(fleet(a=1000), "a", "old", 800)
    plan = diff(desired(spec("new", pin=True, vram_mb=700)), observed(state))
    assert steps(plan) == [("unload", "a", "old", "removed"), ("load", "a", "new", "pinned")]
    assert plan.actions[1].depends_on == ("a1",)


def test_lowering_replicas_unloads_the_least_recently_used_idle_copy() -> None:
    state = fleet(a=1000, b=1000, c=1000)
    hold(state, "a", "m", 100, last_used_at=50.0)
    hold(state, "b", "m", 100, last_used_at=10.0, in_flight=2)  # oldest but busy: kept
    hold(state, "c", "m", 100, last_used_at=30.0)
    plan = diff(desired(spec("m", pin=True, replicas=1, dtype="float32")), observed(state))
    assert steps(plan) == [("unload", "c", "m", "excess"), ("unload", "a", "m", "excess")]


def test_a_copy_still_loading_counts_and_a_failed_one_does_not() -> None:
    loading = hold(fleet(a=1000), "a", "m", 100, status="loading")
    assert diff(desired(spec("m", pin=True)), observed(loading)).actions == ()
    failed = hold(fleet(a=1000), "a", "m", 0, status="failed")
    assert steps(diff(desired(spec("m", pin=True)), observed(failed))) == [
        ("load", "a", "m", "pinned")
    ]


def test_unreachable_neurons_are_warned_about_and_not_placed_on() -> None:
    state = fleet(a=1000, b=5000)
    state.neurons["b"].healthy = False
    state.neurons["b"].last_error = "connection refused"
    plan = diff(desired(spec("m", pin=True, vram_mb=100)), observed(state))
    assert steps(plan) == [("load", "a", "m", "pinned")]
    assert plan.warnings == (
        "neuron b is unreachable (connection refused): what it holds is unknown",
    )


def test_diff_is_pure_and_deterministic() -> None:
    state = hold(fleet(a=1000, b=1000), "a", "old", 800)
    before = observed(state).fingerprint()
    frees = [d.memory_free_mb for n in state.neurons.values() for d in n.devices]
    specs = (spec("m", pin=True, vram_mb=500, replicas=2),)
    first, second = diff(desired(*specs), observed(state)), diff(desired(*specs), observed(state))
    assert first == second
    assert observed(state).fingerprint() == before
    assert [d.memory_free_mb for n in state.neurons.values() for d in n.devices] == frees
    assert "old" in state.neurons["a"].models


def test_foreign_neurons_are_never_touched() -> None:
    state = FleetState()
    foreign = state.add_neuron("vllm", "http://127.0.0.1:1/v1", kind="openai", static_models=["x"])
    foreign.healthy = True
    foreign.apply_static_models(["x"])
    plan = diff(desired(spec("m", pin=True)), observed(state))
    assert plan.actions == ()
    assert [e.model for e in plan.errors] == ["m"]


def test_idle_unpinned_copies_past_keep_alive_are_unloaded_first() -> None:
    state = hold(fleet(a=1000), "a", "casual", 300, last_used_at=100.0)
    hold(state, "a", "busy", 300, last_used_at=100.0, in_flight=1)
    hold(state, "a", "pinned", 300, last_used_at=100.0)
    specs = (spec("casual"), spec("busy"), spec("pinned", pin=True))
    plan = diff(desired(*specs, keep_alive=600.0), observed(state), now=701.0)
    assert steps(plan) == [("unload", "a", "casual", "keep_alive")]
    assert plan.actions[0].reason == "idle 10m1s on a >= keep_alive 10m"
    assert diff(desired(*specs, keep_alive=600.0), observed(state), now=699.0).actions == ()


def test_a_defrag_restarts_what_the_caller_can_restart_and_warns_about_the_rest() -> None:
    state = fleet(a=1000, b=1000, c=1000)
    for neuron in state.neurons.values():
        neuron.cycles = 5
    hold(state, "c", "m", 1, in_flight=1)  # busy: not due
    wanted = desired(spec("m"), defrag_after_cycles=5)
    plan = diff(wanted, observed(state), restartable=["a", "c"])
    assert steps(plan) == [("restart", "a", "*", "defrag")]
    assert plan.actions[0].reason == "5 load/unload cycles >= defrag_after_cycles 5, idle"
    assert plan.warnings == (
        "neuron b: 5 load/unload cycles >= defrag_after_cycles 5, idle; "
        "restart it to defragment (not local)",
    )
    by_host = diff(wanted, observed(state), restartable=["a"], restarted_by_host=["b"])
    assert steps(by_host) == [("restart", "a", "*", "defrag")] and by_host.warnings == ()
    off = desired(spec("m"), defrag_after_cycles=0)
    assert diff(off, observed(state), restartable=["a"]).actions == ()
