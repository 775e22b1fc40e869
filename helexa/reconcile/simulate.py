"""What an action does to a FleetState, for planning (pure, mutates the copy it is given).

Memory is modelled per device like placement models it: a load takes its
footprint from the best `devices` eligible devices (split evenly), an unload
gives a location's memory back on the devices it reported.
"""

from __future__ import annotations

from helexa.config import ModelSpec
from helexa.fleet.placement import eligible_devices
from helexa.fleet.state import FleetState, ModelLocation


def simulate_unload(fleet: FleetState, neuron_name: str, model_id: str) -> ModelLocation | None:
    """Remove the copy and free its memory; returns what was there."""
    neuron = fleet.neurons[neuron_name]
    loc = neuron.models.pop(model_id, None)
    if loc is None or not neuron.devices:
        return loc
    known = {d.index: d for d in neuron.devices}
    on = [i for i in loc.devices if i in known] or sorted(known)
    share = loc.memory_mb // len(on)
    for index in on:
        device = known[index]
        device.memory_free_mb = min(device.memory_total_mb, device.memory_free_mb + share)
    return loc


def simulate_load(
    fleet: FleetState, neuron_name: str, spec: ModelSpec, memory_mb: int
) -> ModelLocation:
    """Add a `loading` copy of `spec` and take its footprint from the chosen devices."""
    neuron = fleet.neurons[neuron_name]
    free = {d.index: d.memory_free_mb for d in neuron.devices}
    eligible = sorted(eligible_devices(spec, neuron), key=lambda i: (-free[i], i))
    chosen = sorted(eligible[: spec.devices])
    if chosen:
        share = memory_mb // len(chosen)
        for device in neuron.devices:
            if device.index in chosen:
                device.memory_free_mb = max(0, device.memory_free_mb - share)
    loc = ModelLocation(
        model_id=spec.id,
        neuron=neuron_name,
        state="loading",
        memory_mb=memory_mb,
        dtype=spec.dtype,
        devices=chosen,
        path=str(spec.path) if spec.path else None,
        revision=spec.revision,
    )
    neuron.models[spec.id] = loc
    return loc
