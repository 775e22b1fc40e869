"""The observed fingerprint: what a plan depends on, and nothing that drifts."""

from __future__ import annotations

from helexa.reconcile.observed import observe
from tests.reconcile.fleets import fleet, hold, observed


def test_free_memory_and_usage_do_not_move_the_fingerprint() -> None:
    state = hold(fleet(a=1000), "a", "m", 100)
    before = observed(state).fingerprint()
    state.neurons["a"].devices[0].memory_free_mb -= 37
    state.neurons["a"].models["m"].in_flight = 3
    state.neurons["a"].models["m"].state = "loading"  # loading and loaded both count as present
    assert observed(state).fingerprint() == before


def test_health_models_and_dtype_move_the_fingerprint() -> None:
    state = hold(fleet(a=1000, b=1000), "a", "m", 100)
    base = observed(state).fingerprint()
    variants = []
    for change in ("health", "model", "dtype"):
        copy = observe(state).fleet
        if change == "health":
            copy.neurons["b"].healthy = False
        elif change == "model":
            hold(copy, "b", "x", 10)
        else:
            copy.neurons["a"].models["m"].dtype = "bfloat16"
        variants.append(observed(copy).fingerprint())
    assert base not in variants and len(set(variants)) == 3


def test_observe_takes_a_copy_the_poller_cannot_change() -> None:
    state = hold(fleet(a=1000), "a", "m", 100)
    snapshot = observe(state)
    state.neurons["a"].models.clear()
    state.neurons["a"].devices[0].memory_free_mb = 0
    assert "m" in snapshot.fleet.neurons["a"].models
    assert snapshot.fleet.neurons["a"].devices[0].memory_free_mb == 900
