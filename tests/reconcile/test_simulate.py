"""Simulated loads and unloads move memory on the devices placement reads."""

from __future__ import annotations

from helexa.fleet.state import DeviceSnapshot
from helexa.reconcile.simulate import simulate_load, simulate_unload
from tests.reconcile.fleets import fleet, spec


def test_a_load_takes_memory_from_the_freest_devices_and_an_unload_gives_it_back() -> None:
    state = fleet(a=1000)
    state.neurons["a"].devices.append(DeviceSnapshot(1, "gpu", "cuda", 2000, 2000))
    loc = simulate_load(state, "a", spec("m", devices=1), 600)
    assert (loc.state, loc.devices) == ("loading", [1])
    assert [d.memory_free_mb for d in state.neurons["a"].devices] == [1000, 1400]
    assert simulate_unload(state, "a", "m") is loc
    assert [d.memory_free_mb for d in state.neurons["a"].devices] == [1000, 2000]
    assert simulate_unload(state, "a", "m") is None


def test_a_two_device_load_splits_its_footprint() -> None:
    state = fleet(a=1000)
    state.neurons["a"].devices.append(DeviceSnapshot(1, "gpu", "cuda", 1000, 1000))
    simulate_load(state, "a", spec("m", devices=2), 600)
    assert [d.memory_free_mb for d in state.neurons["a"].devices] == [700, 700]
