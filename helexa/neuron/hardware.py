"""Device discovery: NVML for GPUs, one CPU device when there are none.

Everything is read fresh on every call (free memory moves as models load).
NVML being absent (no library, no driver, no GPU) is a normal state of a
CPU-only host: it is reported as a reason string, never raised.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psutil

from helexa.protocol.neuron import Device, DeviceKind, EngineInfo

MB = 1024 * 1024


@dataclass(frozen=True)
class HardwareReport:
    """What `/discovery` reports about this host's devices and engine."""

    devices: list[Device]
    engine: EngineInfo


@dataclass(frozen=True)
class DeviceBudget:
    """Memory a load may use on one device, after headroom and caps."""

    index: int
    kind: DeviceKind
    free_mb: int


@dataclass(frozen=True)
class MemoryBudget:
    """Per-device memory available to the next load; the engine picks devices from it."""

    devices: tuple[DeviceBudget, ...]

    @property
    def kind(self) -> DeviceKind:
        """`cuda` when any GPU is present, else `cpu` (a load never mixes the two)."""
        return "cuda" if any(d.kind == "cuda" for d in self.devices) else "cpu"

    def choose(self, count: int) -> tuple[DeviceBudget, ...]:
        """The `count` devices with the most free memory (ties by index); CPU is one device."""
        candidates = [d for d in self.devices if d.kind == self.kind]
        if self.kind == "cpu":
            return tuple(candidates[:1])
        ranked = sorted(candidates, key=lambda d: (-d.free_mb, d.index))
        return tuple(sorted(ranked[:count], key=lambda d: d.index))


def discover(max_memory_mb: int = 0, used_mb: Mapping[int, int] | None = None) -> HardwareReport:
    """Read devices and engine versions now; `max_memory_mb` > 0 caps each device.

    `used_mb` is what this neuron's own models hold per device index: under a
    cap, free memory is what is left of the cap after them (the device's own
    free memory already counts them, but the cap does not know about them).
    """
    gpus, nvml_info = _nvml_devices()
    devices = gpus if gpus else [_cpu_device()]
    if max_memory_mb > 0:
        used = used_mb or {}
        devices = [_capped(d, max_memory_mb, used.get(d.index, 0)) for d in devices]
    engine = EngineInfo(
        torch=_package_version("torch"),
        transformers=_package_version("transformers"),
        cuda=nvml_info.get("cuda") or _torch_cuda_version(),
        driver=nvml_info.get("driver"),
        nvml=nvml_info.get("absent"),
    )
    return HardwareReport(devices=devices, engine=engine)


def memory_budget(devices: list[Device], reserve_mb: int) -> MemoryBudget:
    """Free memory per device minus the `reserve_mb` headroom kept on every device."""
    return MemoryBudget(
        tuple(DeviceBudget(d.index, d.kind, max(0, d.memory_free_mb - reserve_mb)) for d in devices)
    )


def _capped(device: Device, cap_mb: int, used_mb: int) -> Device:
    # The cap is what helexa may use on the device, whatever else runs there.
    total = min(device.memory_total_mb, cap_mb)
    free = max(0, min(device.memory_free_mb, total - used_mb))
    return device.model_copy(update={"memory_total_mb": total, "memory_free_mb": free})


def _cpu_device() -> Device:
    vm = psutil.virtual_memory()
    return Device(
        index=0,
        name=_cpu_name(),
        kind="cpu",
        memory_total_mb=int(vm.total // MB),
        memory_free_mb=int(vm.available // MB),
    )


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _nvml_devices() -> tuple[list[Device], dict[str, str]]:
    """GPUs via NVML, plus driver/CUDA versions or the reason NVML is absent."""
    try:
        import pynvml
    except ImportError:
        return [], {"absent": "nvidia-ml-py not installed"}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return [], {"absent": f"NVML unavailable: {exc}"}
    try:
        info = {
            "driver": _text(pynvml.nvmlSystemGetDriverVersion()),
            "cuda": _cuda_from_int(pynvml.nvmlSystemGetCudaDriverVersion()),
        }
        count = pynvml.nvmlDeviceGetCount()
        devices = [_nvml_device(pynvml, i) for i in range(count)]
        if not devices:
            info["absent"] = "no GPU found by NVML"
        return devices, info
    except pynvml.NVMLError as exc:
        return [], {"absent": f"NVML query failed: {exc}"}
    finally:
        pynvml.nvmlShutdown()


def _nvml_device(pynvml: Any, index: int) -> Device:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
    return Device(
        index=index,
        name=_text(pynvml.nvmlDeviceGetName(handle)),
        kind="cuda",
        memory_total_mb=int(memory.total // MB),
        memory_free_mb=int(memory.free // MB),
        compute_capability=f"{major}.{minor}",
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _cuda_from_int(version: int) -> str:
    # NVML encodes CUDA 12.4 as 12040.
    return f"{version // 1000}.{(version % 1000) // 10}"


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch_cuda_version() -> str | None:
    """torch's CUDA build, if torch is already imported: discovery alone never pays
    torch's import time (seconds) on a host that has loaded nothing yet."""
    torch = sys.modules.get("torch")
    version = getattr(getattr(torch, "version", None), "cuda", None)
    return version if isinstance(version, str) else None
