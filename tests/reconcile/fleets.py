"""Hand-built fleets and desired states for the pure reconcile tests."""

from __future__ import annotations

from typing import Any

from helexa.config import ModelSpec
from helexa.config.fleet import ReconcileConfig
from helexa.fleet.state import DeviceSnapshot, FleetState, ModelLocation
from helexa.reconcile.desired import DesiredState
from helexa.reconcile.observed import ObservedState


def spec(model_id: str, **fields: Any) -> ModelSpec:
    return ModelSpec.model_validate({"id": model_id, **fields})


def desired(*specs: ModelSpec, generation: str = "g" * 64, **extra: Any) -> DesiredState:
    return DesiredState(
        generation=generation,
        specs={s.id: s for s in specs},
        neurons={},
        reconcile=extra.pop("reconcile", ReconcileConfig()),
        **extra,
    )


def fleet(**neurons: int) -> FleetState:
    """fleet(a=1000, b=2000): healthy neurons with one device of that many MB, all free."""
    state = FleetState()
    for name, total_mb in neurons.items():
        neuron = state.add_neuron(name, f"http://127.0.0.1:1/{name}")
        neuron.healthy = True
        neuron.devices = [DeviceSnapshot(0, "gpu", "cuda", total_mb, total_mb)]
    return state


def hold(
    state: FleetState,
    neuron: str,
    model_id: str,
    memory_mb: int,
    *,
    dtype: str = "float32",
    in_flight: int = 0,
    last_used_at: float | None = 100.0,
    status: str = "loaded",
) -> FleetState:
    """Put a loaded copy on `neuron` and take its memory off the device."""
    target = state.neurons[neuron]
    target.models[model_id] = ModelLocation(
        model_id=model_id,
        neuron=neuron,
        state=status,  # type: ignore[arg-type]
        memory_mb=memory_mb,
        dtype=dtype,
        devices=[0],
        in_flight=in_flight,
        last_used_at=last_used_at,
    )
    target.devices[0].memory_free_mb -= memory_mb
    return state


def observed(state: FleetState) -> ObservedState:
    return ObservedState(state)
