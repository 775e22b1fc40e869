"""The /v1/models catalogue: models.toml x the observed fleet."""

from __future__ import annotations

from typing import Any

from helexa.config.models import ModelsConfig
from helexa.fleet.state import DeviceSnapshot, FleetState
from helexa.gateway.catalogue import build_catalogue, catalogue_json, lookup
from helexa.protocol.neuron import ModelsList

CREATED = 1_700_000_000

MODELS = ModelsConfig.model_validate(
    {
        "models": [
            {
                "id": "Qwen/Qwen3-8B",
                "aliases": ["helexa/medium"],
                "pin": True,
                "context_length": 32768,
                "min_device_vram_mb": 16000,
            },
            {"id": "tiny", "neurons": ["small"], "context_length": 4096},
        ],
        "aliases": {"claude-*": "Qwen/Qwen3-8B", "fast": "tiny", "gpt-big": "vendor/big"},
    }
)


def fleet() -> FleetState:
    state = FleetState()
    for name, total_mb in (("beast", 24000), ("small", 8000)):
        neuron = state.add_neuron(name, f"http://{name}.test")
        neuron.record_success(0.0)
        neuron.devices = [DeviceSnapshot(0, "gpu", "cuda", total_mb, total_mb // 2)]
    models: dict[str, list[dict[str, Any]]] = {
        "beast": [{"id": "Qwen/Qwen3-8B", "state": "loaded", "context_length": 16384}],
        "small": [
            {"id": "tiny", "state": "loading"},
            {"id": "stray/one", "state": "loaded", "context_length": 2048},
        ],
    }
    for name, listing in models.items():
        state.neurons[name].apply_models(ModelsList.model_validate({"models": listing}))
    big = state.add_neuron("big", "http://big.test/v1", kind="openai", static_models=["vendor/big"])
    big.record_success(0.0)
    big.apply_static_models(big.static_models)
    return state


def by_id(state: FleetState) -> dict[str, dict[str, Any]]:
    body = catalogue_json(build_catalogue(MODELS, state, CREATED))
    assert body["object"] == "list"
    return {entry["id"]: entry for entry in body["data"]}


def test_lists_models_toml_then_held_models_then_exact_aliases() -> None:
    ids = [e.id for e in build_catalogue(MODELS, fleet(), CREATED)]
    assert ids == [
        "Qwen/Qwen3-8B",
        "tiny",
        "stray/one",
        "vendor/big",
        "fast",
        "gpt-big",
        "helexa/medium",
    ]


def test_entries_carry_openai_fields_and_fleet_facts() -> None:
    entries = by_id(fleet())
    qwen = entries["Qwen/Qwen3-8B"]
    assert qwen == {
        "id": "Qwen/Qwen3-8B",
        "object": "model",
        "created": CREATED,
        "owned_by": "helexa",
        "alias_of": None,
        "loaded": True,
        "locations": [{"neuron": "beast", "state": "loaded"}],
        "feasible_on": ["beast"],  # small's 8000 MB device is under min_device_vram_mb
        "pinned": True,
        "context_length": 16384,  # what the loaded copy reports
        "max_model_len": 16384,
    }
    tiny = entries["tiny"]
    assert (tiny["loaded"], tiny["locations"]) == (False, [{"neuron": "small", "state": "loading"}])
    assert (tiny["feasible_on"], tiny["context_length"], tiny["pinned"]) == (["small"], 4096, False)


def test_models_only_a_neuron_knows_are_listed_with_their_location() -> None:
    stray = by_id(fleet())["stray/one"]
    assert (stray["loaded"], stray["feasible_on"], stray["context_length"]) == (
        True,
        ["small"],
        2048,
    )
    foreign = by_id(fleet())["vendor/big"]
    assert (foreign["loaded"], foreign["feasible_on"]) == (True, ["big"])


def test_aliases_are_entries_pointing_at_their_target() -> None:
    entries = by_id(fleet())
    medium = entries["helexa/medium"]
    assert medium["alias_of"] == "Qwen/Qwen3-8B" and medium["loaded"] and medium["pinned"]
    assert entries["fast"]["alias_of"] == "tiny"
    assert entries["gpt-big"]["alias_of"] == "vendor/big"
    assert "claude-*" not in entries


def test_down_neuron_copies_are_not_loaded() -> None:
    state = fleet()
    state.neurons["beast"].healthy = False
    qwen = by_id(state)["Qwen/Qwen3-8B"]
    assert not qwen["loaded"] and qwen["feasible_on"] == []


def test_alias_to_a_server_that_is_not_up_is_not_listed() -> None:
    state = fleet()
    assert state.neurons["big"].record_failure("gone", 1.0, failure_threshold=1)
    entries = by_id(state)
    assert "gpt-big" not in entries and "vendor/big" not in entries


def test_lookup_resolves_any_usable_name() -> None:
    state = fleet()
    hit = lookup("claude-sonnet-4", MODELS, state, CREATED)
    assert hit is not None and hit.to_json()["id"] == "claude-sonnet-4"
    assert hit.alias_of == "Qwen/Qwen3-8B" and hit.loaded
    assert lookup("nope", MODELS, state, CREATED) is None
