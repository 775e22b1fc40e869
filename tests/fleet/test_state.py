"""Fleet state: feeding it wire models, health flips, footprint memory, JSON."""

from __future__ import annotations

import json

from helexa.fleet.state import DECISION_HISTORY, FleetState, ModelLocation
from helexa.protocol.neuron import Discovery, ModelsList

DISCOVERY = Discovery.model_validate(
    {
        "hostname": "beast.internal",
        "version": "0.3.0",
        "engine": {"torch": "2.13.0"},
        "devices": [
            {
                "index": 0,
                "name": "RTX 4090",
                "kind": "cuda",
                "memory_total_mb": 24000,
                "memory_free_mb": 10000,
            },
            {
                "index": 1,
                "name": "RTX 3060",
                "kind": "cuda",
                "memory_total_mb": 12000,
                "memory_free_mb": 12000,
            },
        ],
    }
)


def models(*entries: dict[str, object], cycles: int = 0) -> ModelsList:
    return ModelsList.model_validate({"models": list(entries), "cycles": cycles})


def test_busy_score_and_idle() -> None:
    loc = ModelLocation("m", "a", "loaded", in_flight=3, queued=3, max_in_flight=4)
    assert loc.busy_score == 1.5 and not loc.idle
    assert ModelLocation("m", "a", "loaded", max_in_flight=0).busy_score == 0.0
    assert ModelLocation("m", "a", "loaded").idle


def test_last_activity_falls_back_to_loaded_at() -> None:
    assert ModelLocation("m", "a", "loaded", loaded_at=5.0).last_activity() == 5.0
    assert ModelLocation("m", "a", "loaded", loaded_at=5.0, last_used_at=9.0).last_activity() == 9.0


def test_discovery_and_models_fill_a_neuron() -> None:
    fleet = FleetState()
    neuron = fleet.add_neuron("beast", "http://beast.internal:13131")
    neuron.apply_discovery(DISCOVERY)
    neuron.apply_models(
        models({"id": "m", "state": "loaded", "memory_mb": 9000, "devices": [0]}, cycles=4)
    )
    assert (neuron.free_memory_mb, neuron.total_memory_mb) == (22000, 36000)
    assert (neuron.hostname, neuron.version, neuron.cycles) == ("beast.internal", "0.3.0", 4)
    assert neuron.models["m"].neuron == "beast" and neuron.models["m"].devices == [0]
    assert [loc.model_id for loc in neuron.servable_models()] == ["m"]
    assert fleet.locations("m") == [neuron.models["m"]] and fleet.model_ids() == ["m"]


def test_health_flips_after_threshold_failures_and_back_on_one_success() -> None:
    neuron = FleetState().add_neuron("a", "http://a.test")
    assert not neuron.healthy
    assert neuron.record_failure("refused", 1.0, failure_threshold=2) is False  # was never up
    assert neuron.record_success(2.0) is True and neuron.healthy
    neuron.apply_models(models({"id": "m", "state": "loaded"}))
    assert neuron.record_failure("timeout", 3.0, failure_threshold=2) is False
    assert neuron.healthy and neuron.models and neuron.last_error == "timeout"
    assert neuron.record_failure("timeout", 4.0, failure_threshold=2) is True
    assert not neuron.healthy and neuron.models == {} and neuron.consecutive_failures == 2
    assert neuron.record_success(5.0) is True
    assert (neuron.consecutive_failures, neuron.last_error, neuron.last_poll_at) == (0, None, 5.0)


def test_memory_history_is_per_dtype_and_outlives_unloads() -> None:
    fleet = FleetState()
    neuron = fleet.add_neuron("a", "http://a.test")
    neuron.apply_models(
        models(
            {"id": "m", "state": "loaded", "memory_mb": 9000, "dtype": "bfloat16"},
            {"id": "loading", "state": "loading", "memory_mb": 0},
        )
    )
    fleet.learn_memory(neuron)
    neuron.apply_models(
        models({"id": "m", "state": "loaded", "memory_mb": 17000, "dtype": "float32"})
    )
    fleet.learn_memory(neuron)
    neuron.apply_models(models())
    fleet.learn_memory(neuron)
    assert fleet.measured_memory_mb("m", "bfloat16") == 9000
    assert fleet.measured_memory_mb("m", "float32") == 17000
    assert fleet.measured_memory_mb("m", "float16") is None
    assert fleet.measured_memory_mb("m", "auto") == 17000  # the newest of any dtype
    assert fleet.measured_memory_mb("loading", None) is None


def test_undeclared_dtype_measurement_serves_any_dtype() -> None:
    fleet = FleetState()
    neuron = fleet.add_neuron("a", "http://a.test")
    neuron.apply_models(models({"id": "m", "state": "loaded", "memory_mb": 500}))
    fleet.learn_memory(neuron)
    assert fleet.measured_memory_mb("m", "bfloat16") == 500


def test_static_models_keep_gateway_tracked_counts() -> None:
    neuron = FleetState().add_neuron("big", "http://big.test/v1", "openai", ["x", "y"])
    neuron.apply_static_models(neuron.static_models)
    neuron.models["x"].in_flight = 2
    neuron.apply_static_models(["x"])
    assert list(neuron.models) == ["x"] and neuron.models["x"].in_flight == 2
    assert not neuron.managed and neuron.models["x"].servable


def test_decisions_are_a_bounded_ring() -> None:
    fleet = FleetState()
    for i in range(DECISION_HISTORY + 5):
        fleet.record_decision("place", f"m{i}", "a", "fits", float(i))
    assert len(fleet.decisions) == DECISION_HISTORY
    assert fleet.decisions[0].model == "m5" and fleet.decisions[-1].at == DECISION_HISTORY + 4


def test_equality_ignores_when_we_looked_and_what_we_decided() -> None:
    one, two = FleetState(), FleetState()
    for fleet, at in ((one, 1.0), (two, 2.0)):
        fleet.add_neuron("a", "http://a.test").record_success(at)
    one.record_decision("evict", "m", "a", "lru", 1.0)
    assert one == two
    two.neurons["a"].cycles = 1
    assert one != two


def test_to_json_is_the_admin_view() -> None:
    fleet = FleetState()
    neuron = fleet.add_neuron("beast", "http://beast.internal:13131")
    neuron.record_success(7.0)
    neuron.apply_discovery(DISCOVERY)
    neuron.apply_models(models({"id": "m", "state": "loaded", "memory_mb": 9000, "in_flight": 1}))
    fleet.learn_memory(neuron)
    fleet.record_decision("place", "m", "beast", "fits in free memory", 6.0)
    body = json.loads(json.dumps(fleet.to_json()))
    view = body["neurons"][0]
    assert (view["name"], view["healthy"], view["last_poll_at"], view["free_memory_mb"]) == (
        "beast",
        True,
        7.0,
        22000,
    )
    assert view["devices"][1]["name"] == "RTX 3060"
    assert view["models"][0]["in_flight"] == 1 and view["models"][0]["state"] == "loaded"
    assert body["memory_history"] == [{"model": "m", "dtype": "auto", "memory_mb": 9000}]
    assert body["decisions"][0]["reason"] == "fits in free memory"


def test_starting_until_the_first_answer_then_up_or_down() -> None:
    fleet = FleetState()
    remote = fleet.add_neuron("far", "http://far:1")
    local = fleet.add_neuron("here", "http://127.0.0.1:1", local=True)
    assert (remote.health, local.health) == ("starting", "starting")
    for _ in range(3):
        remote.record_failure("connection refused", 1.0, failure_threshold=3)
        local.record_failure("connection refused", 1.0, failure_threshold=3)
    # A remote neuron gets the debounce's grace; a local one is ours, still coming up.
    assert (remote.health, local.health) == ("down", "starting")
    assert local.to_json()["starting"] is True and remote.to_json()["starting"] is False
    local.record_success(2.0)
    assert local.health == "up"
    for _ in range(3):
        local.record_failure("connection refused", 3.0, failure_threshold=3)
    assert local.health == "down"  # it has been up: now it is down
