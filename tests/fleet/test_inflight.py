"""The in-flight ledger: this gateway's requests, counted where a poll cannot overwrite them."""

from __future__ import annotations

from helexa.fleet.inflight import InFlightLedger
from helexa.fleet.state import FleetState
from helexa.protocol.neuron import ModelsList
from helexa.reconcile.observed import snapshot


def listing(in_flight: int) -> ModelsList:
    return ModelsList.model_validate(
        {"models": [{"id": "m", "state": "loaded", "in_flight": in_flight, "max_in_flight": 2}]}
    )


def test_counts_per_neuron_and_model() -> None:
    ledger = InFlightLedger()
    ledger.start("a", "m")
    ledger.start("a", "m")
    ledger.start("b", "m")
    assert (ledger.count("a", "m"), ledger.count("b", "m"), ledger.count("a", "x")) == (2, 1, 0)
    ledger.finish("a", "m")
    ledger.finish("a", "m")
    ledger.finish("a", "m")  # one too many (a bug elsewhere) never goes below zero
    assert ledger.count("a", "m") == 0 and ledger.total() == 1


def test_a_request_finishing_after_a_poll_frees_the_new_location() -> None:
    fleet = FleetState()
    neuron = fleet.add_neuron("a", "http://a.test")
    neuron.apply_models(listing(0))
    fleet.in_flight.start("a", "m")  # dispatch sends a request
    assert neuron.models["m"].active == 1  # seen before the next poll
    neuron.apply_models(listing(1))  # the poll replaces the location; the neuron counts it
    assert neuron.models["m"].active == 1  # counted once, not twice
    fleet.in_flight.finish("a", "m")  # the request ends after that poll
    loc = neuron.models["m"]
    assert loc.active == 0 and loc.idle and loc.busy_score == 0.0
    assert loc.to_json()["in_flight"] == 0


def test_others_requests_still_count() -> None:
    fleet = FleetState()
    neuron = fleet.add_neuron("a", "http://a.test")
    fleet.in_flight.start("a", "m")
    neuron.apply_models(listing(3))  # ours and two from another gateway
    assert neuron.models["m"].active == 3
    fleet.in_flight.finish("a", "m")
    assert neuron.models["m"].active == 2 and not neuron.models["m"].idle


def test_a_snapshot_freezes_the_count() -> None:
    fleet = FleetState()
    neuron = fleet.add_neuron("a", "http://a.test")
    neuron.apply_models(listing(0))
    fleet.in_flight.start("a", "m")
    frozen = snapshot(fleet)
    fleet.in_flight.finish("a", "m")
    assert frozen.neurons["a"].models["m"].active == 1
    assert fleet.neurons["a"].models["m"].active == 0


def test_static_models_of_a_foreign_server_read_the_ledger() -> None:
    fleet = FleetState()
    big = fleet.add_neuron("big", "http://big.test/v1", "openai", ["x"])
    big.apply_static_models(big.static_models)
    fleet.in_flight.start("big", "x")
    assert big.models["x"].active == 1 and big.models["x"].busy_score == 1.0
