"""Discovery on this (GPU-less) machine, caps and headroom, device choice."""

from __future__ import annotations

import psutil

from helexa.neuron.hardware import DeviceBudget, MemoryBudget, discover, memory_budget
from helexa.protocol.neuron import Device


def test_without_nvml_one_cpu_device_is_reported_with_the_reason() -> None:
    report = discover()

    assert [d.kind for d in report.devices] == ["cpu"]
    cpu = report.devices[0]
    assert cpu.index == 0
    assert 0 < cpu.memory_free_mb <= cpu.memory_total_mb
    assert cpu.memory_total_mb == psutil.virtual_memory().total // (1024 * 1024)
    assert report.engine.nvml  # the reason NVML is absent, as text
    assert report.engine.torch and report.engine.transformers


def test_max_memory_cap_applies_to_the_cpu_device() -> None:
    capped = discover(max_memory_mb=300).devices[0]

    assert capped.memory_total_mb == 300
    assert capped.memory_free_mb == 300


def test_a_cap_is_shared_by_the_models_already_held() -> None:
    (device,) = discover(max_memory_mb=64, used_mb={0: 40}).devices
    assert device.memory_total_mb == 64
    assert device.memory_free_mb == 24
    (full,) = discover(max_memory_mb=64, used_mb={0: 100}).devices
    assert full.memory_free_mb == 0


def test_budget_subtracts_the_reserve_and_never_goes_negative() -> None:
    devices = [
        Device(index=0, name="a", kind="cuda", memory_total_mb=8000, memory_free_mb=5000),
        Device(index=1, name="b", kind="cuda", memory_total_mb=8000, memory_free_mb=500),
    ]

    budget = memory_budget(devices, reserve_mb=1024)

    assert [d.free_mb for d in budget.devices] == [3976, 0]


def test_choose_prefers_the_gpus_with_most_free_memory() -> None:
    budget = MemoryBudget(
        (
            DeviceBudget(0, "cuda", 1000),
            DeviceBudget(1, "cuda", 9000),
            DeviceBudget(2, "cuda", 5000),
        )
    )

    assert [d.index for d in budget.choose(1)] == [1]
    assert [d.index for d in budget.choose(2)] == [1, 2]
    assert len(budget.choose(5)) == 3  # the loader reports too few GPUs


def test_cpu_budget_is_one_device_whatever_is_asked() -> None:
    budget = MemoryBudget((DeviceBudget(0, "cpu", 4000),))

    assert budget.kind == "cpu"
    assert budget.choose(2) == (DeviceBudget(0, "cpu", 4000),)
