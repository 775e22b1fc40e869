"""Routing: alias resolution and replica choice over a fleet fed by real wire models."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from helexa.config.models import ModelsConfig
from helexa.errors import ModelNotFound
from helexa.fleet.state import FleetState
from helexa.gateway.affinity import chat_prefix_key, completion_prefix_key, ring_order
from helexa.gateway.router import (
    RoutingHint,
    RoutingPolicy,
    choose_replica,
    choose_replica_explained,
    is_loading_somewhere,
    loading_on,
    openai_hint,
    resolve,
    resolve_or_raise,
    route,
)
from helexa.protocol.neuron import ModelsList

MODELS = ModelsConfig.model_validate(
    {
        "models": [
            {"id": "Qwen/Qwen3-8B", "aliases": ["helexa/medium"]},
            {"id": "tiny"},
        ],
        "aliases": {
            "claude-*-haiku-*": "tiny",
            "claude-*": "Qwen/Qwen3-8B",
            "gpt-big": "vendor/big",
        },
    }
)


def model(model_id: str, state: str = "loaded", **fields: Any) -> dict[str, Any]:
    return {"id": model_id, "state": state, "max_in_flight": 4, **fields}


def fleet_of(**neurons: list[dict[str, Any]]) -> FleetState:
    """Neurons fed through the same wire models the poller applies."""
    fleet = FleetState()
    for name, models in neurons.items():
        neuron = fleet.add_neuron(name, f"http://{name}.test")
        neuron.record_success(0.0)
        neuron.apply_models(ModelsList.model_validate({"models": models}))
    return fleet


RESOLVE = [
    pytest.param("Qwen/Qwen3-8B", "Qwen/Qwen3-8B", True, id="model-id"),
    pytest.param("helexa/medium", "Qwen/Qwen3-8B", True, id="model-alias"),
    pytest.param("claude-3-5-haiku-latest", "tiny", True, id="most-specific-pattern"),
    pytest.param("claude-sonnet-4", "Qwen/Qwen3-8B", True, id="catch-all-pattern"),
    pytest.param("stray/model", "stray/model", False, id="held-by-a-neuron-not-in-models-toml"),
    pytest.param("claude-custom", "claude-custom", False, id="held-exact-id-beats-a-pattern"),
    pytest.param("gpt-big", "vendor/big", False, id="alias-to-a-foreign-servers-model"),
]


@pytest.mark.parametrize(("name", "model_id", "in_models_toml"), RESOLVE)
def test_resolve(name: str, model_id: str, in_models_toml: bool) -> None:
    fleet = fleet_of(a=[model("stray/model"), model("claude-custom")], big=[model("vendor/big")])
    resolved = resolve(name, MODELS, fleet)
    assert resolved is not None
    assert (resolved.requested, resolved.model_id) == (name, model_id)
    assert (resolved.spec is not None) == in_models_toml


@pytest.mark.parametrize("name", ["nope", "failed/only", "gpt-big"])
def test_unknown_names_do_not_resolve(name: str) -> None:
    # "failed/only" is only a failed load; "gpt-big" points at a server that is not up.
    fleet = fleet_of(a=[model("failed/only", state="failed")])
    assert resolve(name, MODELS, fleet) is None
    with pytest.raises(ModelNotFound) as caught:
        resolve_or_raise(name, MODELS, fleet)
    assert caught.value.status == 404 and name in caught.value.message


def test_an_unmapped_name_is_told_how_to_map_it() -> None:
    bare = ModelsConfig.model_validate({"models": [{"id": "tiny"}]})
    with pytest.raises(ModelNotFound) as caught:
        resolve_or_raise("claude-sonnet-4-5", bare, FleetState())
    assert '[aliases] "claude-*" = "tiny"' in caught.value.message
    with pytest.raises(ModelNotFound) as caught:
        resolve_or_raise("gpt-x", bare, FleetState())
    assert '[aliases] "gpt-x" = "tiny"' in caught.value.message


def test_choose_replica_least_busy_first_ties_by_name() -> None:
    fleet = fleet_of(
        c=[model("m", in_flight=1)],
        b=[model("m", in_flight=2, queued=2)],
        a=[model("m", in_flight=1)],
        d=[model("m", max_in_flight=1)],
    )
    assert [loc.neuron for loc in choose_replica("m", fleet)] == ["d", "a", "c", "b"]
    # routing = "least_busy" ignores an affinity key.
    hinted = choose_replica(
        "m", fleet, RoutingHint(session_key="0190c0de"), RoutingPolicy("least_busy")
    )
    assert [loc.neuron for loc in hinted] == ["d", "a", "c", "b"]


def test_choose_replica_puts_the_affinity_target_first_then_least_busy() -> None:
    fleet = fleet_of(a=[model("m", in_flight=1)], b=[model("m", in_flight=1)], c=[model("m")])
    hint = RoutingHint(session_key="conversation-7")
    key = hint.affinity
    assert key is not None
    home = ring_order(key.point, ["a", "b", "c"])[0]

    choice = choose_replica_explained("m", fleet, hint)

    rest = sorted({"a", "b", "c"} - {home}, key=lambda n: (n != "c", n))  # c is idle
    assert [loc.neuron for loc in choice.candidates] == [home, *rest]
    assert choice.reason == f"session affinity key={key.digest[:8]} → {home}"


def test_choose_replica_over_the_load_bound_walks_on() -> None:
    hint = RoutingHint(session_key="conversation-7")
    key = hint.affinity
    assert key is not None
    home, second = ring_order(key.point, ["a", "b"])
    fleet = fleet_of(**{home: [model("m", in_flight=4)], second: [model("m")]})

    choice = choose_replica_explained("m", fleet, hint)

    # bound = 1.25 * (4 + 0 + 1) / 2 = 3.125, and all 4 of the home's slots are taken
    assert [loc.neuron for loc in choice.candidates] == [second, home]
    assert choice.reason == (
        f"session affinity key={key.digest[:8]}: {home} over load bound (4 > 3.125)"
        f" → next on ring {second}"
    )


def test_choose_replica_keeps_a_home_with_a_free_slot_over_the_bound() -> None:
    hint = RoutingHint(session_key="conversation-7")
    key = hint.affinity
    assert key is not None
    home, second = ring_order(key.point, ["a", "b"])
    # 3 > the bound 2.5, but the home has 4 slots: one more row beats a prefill elsewhere
    fleet = fleet_of(**{home: [model("m", in_flight=3)], second: [model("m")]})

    choice = choose_replica_explained("m", fleet, hint)

    assert [loc.neuron for loc in choice.candidates] == [home, second]
    assert choice.reason == f"session affinity key={key.digest[:8]} → {home}"


def test_choose_replica_without_a_key_is_least_busy_and_says_so() -> None:
    fleet = fleet_of(a=[model("m", in_flight=1)], b=[model("m")])
    choice = choose_replica_explained("m", fleet)
    assert [loc.neuron for loc in choice.candidates] == ["b", "a"]
    assert choice.reason == "least busy b (no affinity key)"
    single = fleet_of(a=[model("m")])
    assert choose_replica_explained("m", single).reason is None  # nothing to choose


def test_choose_replica_skips_unhealthy_and_unservable_copies() -> None:
    fleet = fleet_of(
        a=[model("m")], b=[model("m", state="unloading")], c=[model("m", state="failed")]
    )
    never_polled = fleet.add_neuron("d", "http://d.test")  # unknown health counts as down
    never_polled.models = {"m": replace(fleet.neurons["a"].models["m"], neuron="d")}
    assert [loc.neuron for loc in choose_replica("m", fleet)] == ["a"]
    assert fleet.neurons["a"].record_failure("gone", 1.0, failure_threshold=1)
    assert choose_replica("m", fleet) == []


def test_route_serves_then_waits_then_places() -> None:
    fleet = fleet_of(a=[model("m", state="loading")], b=[model("m", state="loading")])
    assert is_loading_somewhere("m", fleet)
    assert route("m", fleet).action == "wait"
    assert route("m", fleet).loading_on == ("a", "b") == tuple(loading_on("m", fleet))
    fleet.neurons["b"].models["m"].state = "loaded"
    served = route("m", fleet)
    assert served.action == "serve" and [c.neuron for c in served.candidates] == ["b"]
    assert route("other", fleet).action == "place"
    assert not is_loading_somewhere("other", fleet)


def test_openai_hint_prefers_prompt_cache_key_then_user_then_the_prefix() -> None:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    body: dict[str, Any] = {"messages": messages, "user": "alice", "prompt_cache_key": "k1"}
    assert openai_hint("m", body) == RoutingHint(session_key="k1")
    del body["prompt_cache_key"]
    assert openai_hint("m", body) == RoutingHint(session_key="alice")
    del body["user"]
    prefix = openai_hint("m", body)
    assert prefix.session_key is None and prefix.affinity == chat_prefix_key("m", messages)
    assert openai_hint("m", {"prompt": "abc"}).affinity == completion_prefix_key("m", "abc")
    assert openai_hint("m", {"messages": "nonsense"}).affinity is None
