"""Discovery on this (GPU-less) machine, caps and headroom, device choice."""

from __future__ import annotations

import sys
import types
from typing import Any

import psutil
import pytest

from helexa.neuron.hardware import DeviceBudget, MemoryBudget, discover, memory_budget
from helexa.protocol.neuron import Device

MB = 1024 * 1024


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


class FakeNvmlError(Exception):
    pass


def fake_nvml(gpus: list[dict[str, Any]]) -> types.SimpleNamespace:
    """pynvml's surface that discovery uses, over `gpus` (in NVML's order); a GPU with
    "broken" fails its memory query."""

    def handle(index: int) -> dict[str, Any]:
        return gpus[index]

    def memory(gpu: dict[str, Any]) -> types.SimpleNamespace:
        if gpu.get("broken"):
            raise FakeNvmlError("GPU is lost")
        return types.SimpleNamespace(total=80_000 * MB, free=gpu["free_mb"] * MB)

    return types.SimpleNamespace(
        NVMLError=FakeNvmlError,
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlSystemGetDriverVersion=lambda: "560.35.03",
        nvmlSystemGetCudaDriverVersion=lambda: 12060,
        nvmlDeviceGetCount=lambda: len(gpus),
        nvmlDeviceGetHandleByIndex=handle,
        nvmlDeviceGetMemoryInfo=memory,
        nvmlDeviceGetCudaComputeCapability=lambda gpu: (9, 0),
        nvmlDeviceGetName=lambda gpu: b"NVIDIA H100 80GB HBM3",
        nvmlDeviceGetUUID=lambda gpu: gpu["uuid"],
        nvmlDeviceGetPciInfo=lambda gpu: types.SimpleNamespace(busId=gpu["bus"]),
    )


# NVML's own order (fastest first, say) is not PCI order.
GPUS = [
    {"uuid": "GPU-cccc", "bus": "00000000:C1:00.0", "free_mb": 30_000},
    {"uuid": "GPU-aaaa", "bus": "00000000:41:00.0", "free_mb": 10_000},
    {"uuid": "GPU-bbbb", "bus": "00000000:81:00.0", "free_mb": 20_000},
]


@pytest.fixture
def three_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(GPUS))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def by_index(report: Any) -> list[tuple[int, str | None, int]]:
    return [(d.index, d.uuid, d.memory_free_mb) for d in report.devices]


@pytest.mark.usefixtures("three_gpus")
def test_gpus_are_numbered_as_cuda_numbers_them_in_pci_bus_order() -> None:
    report = discover()

    assert by_index(report) == [
        (0, "GPU-aaaa", 10_000),
        (1, "GPU-bbbb", 20_000),
        (2, "GPU-cccc", 30_000),
    ]
    assert report.engine.nvml is None and report.engine.driver == "560.35.03"


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("2,0", ["GPU-cccc", "GPU-aaaa"]),  # ordinals in PCI order, reordered
        ("GPU-bbbb", ["GPU-bbbb"]),
        ("GPU-cc", ["GPU-cccc"]),  # a unique UUID prefix, as CUDA accepts
        ("1,7,0", ["GPU-bbbb"]),  # CUDA stops at the first unknown entry
        ("0,0", ["GPU-aaaa"]),  # and at a repeated one
    ],
)
@pytest.mark.usefixtures("three_gpus")
def test_cuda_visible_devices_filters_and_renumbers(
    monkeypatch: pytest.MonkeyPatch, visible: str, expected: list[str]
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)

    devices = discover().devices

    assert [d.uuid for d in devices] == expected
    assert [d.index for d in devices] == list(range(len(expected)))


@pytest.mark.usefixtures("three_gpus")
def test_an_empty_cuda_visible_devices_hides_every_gpu_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")

    report = discover()

    assert [d.kind for d in report.devices] == ["cpu"]
    assert report.engine.nvml == "CUDA_VISIBLE_DEVICES hides all 3 GPUs"


def test_one_gpu_failing_its_nvml_query_drops_that_gpu_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = [GPUS[0], {**GPUS[1], "broken": True}, GPUS[2]]
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(broken))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    report = discover()

    assert [d.uuid for d in report.devices] == ["GPU-bbbb", "GPU-cccc"]
    assert report.engine.nvml == "NVML query of GPU 1 failed: GPU is lost"


@pytest.mark.usefixtures("three_gpus")
def test_gpus_torch_cannot_use_are_reported_once_torch_is_loaded() -> None:
    import torch

    assert torch.version.cuda is None  # this CPU-only build: NVML and CUDA disagree

    report = discover()

    assert report.engine.cuda_problem is not None
    assert "NVML shows 3 GPU(s)" in report.engine.cuda_problem


def test_gpus_seen_by_cuda_without_nvml_are_used_instead_of_the_cpu() -> None:
    # NVML is unavailable on this machine; CUDA (injected) still sees a GPU.
    gpu = Device(index=0, name="g", kind="cuda", memory_total_mb=8000, memory_free_mb=7000)

    report = discover(gpus_when_nvml_fails=lambda: [gpu])

    assert report.devices == [gpu]
    assert report.engine.nvml  # still says why NVML is absent


@pytest.mark.usefixtures("three_gpus")
def test_memory_torch_caches_for_this_process_counts_as_free() -> None:
    report = discover(reclaimable_mb={"aaaa": 3_000})

    assert by_index(report)[0] == (0, "GPU-aaaa", 13_000)
    assert memory_budget(report.devices, reserve_mb=0).devices[0].uuid == "GPU-aaaa"
