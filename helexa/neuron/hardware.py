"""Device discovery: NVML for GPUs, one CPU device when there are none.

Everything is read fresh on every call (free memory moves as models load).
NVML being absent (no library, no driver, no GPU) is a normal state of a
CPU-only host: it is reported as a reason string, never raised. One GPU
failing its NVML queries drops that GPU only.

NVML numbers GPUs in its own order and ignores CUDA_VISIBLE_DEVICES; CUDA
numbers the GPUs it is shown in CUDA_DEVICE_ORDER (set to PCI_BUS_ID when the
engine is imported). Devices are reported as CUDA will number them: sorted by
PCI bus id, filtered and reordered by CUDA_VISIBLE_DEVICES, `index` being the
CUDA ordinal. Each carries its UUID, by which the engine finds torch's own
ordinal at load time (engine/placement.py), whatever the order.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Callable, Mapping
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
    uuid: str | None = None  # GPUs: how the engine finds torch's ordinal for this device


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


def discover(
    max_memory_mb: int = 0,
    used_mb: Mapping[int, int] | None = None,
    reclaimable_mb: Mapping[str, int] | None = None,
    gpus_when_nvml_fails: Callable[[], list[Device]] | None = None,
) -> HardwareReport:
    """Read devices and engine versions now; `max_memory_mb` > 0 caps each device.

    `used_mb` is what this neuron's own models hold per device index: under a
    cap, free memory is what is left of the cap after them (the device's own
    free memory already counts them, but the cap does not know about them).
    `reclaimable_mb` (by GPU UUID) is memory NVML counts as used that torch's
    allocator holds unused for this process, so the next load can take it.
    `gpus_when_nvml_fails` lists GPUs some other way (torch) when NVML finds
    none, so a host whose CUDA works without NVML never loads onto the CPU.
    """
    gpus, nvml_info = _nvml_devices()
    if not gpus and gpus_when_nvml_fails is not None:
        gpus = gpus_when_nvml_fails()
    if reclaimable_mb:
        gpus = [_with_reclaimable(d, reclaimable_mb) for d in gpus]
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
        cuda_problem=_cuda_problem(gpus),
    )
    return HardwareReport(devices=devices, engine=engine)


def memory_budget(devices: list[Device], reserve_mb: int) -> MemoryBudget:
    """Free memory per device minus the `reserve_mb` headroom kept on every device."""
    return MemoryBudget(
        tuple(
            DeviceBudget(d.index, d.kind, max(0, d.memory_free_mb - reserve_mb), d.uuid)
            for d in devices
        )
    )


def _with_reclaimable(device: Device, reclaimable_mb: Mapping[str, int]) -> Device:
    spare = reclaimable_mb.get(normalized_uuid(device.uuid or ""), 0)
    free = min(device.memory_total_mb, device.memory_free_mb + spare)
    return device.model_copy(update={"memory_free_mb": free})


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
    """GPUs via NVML as CUDA will number them, plus driver/CUDA versions or the reason
    NVML (or a GPU) is absent."""
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
    except pynvml.NVMLError as exc:
        pynvml.nvmlShutdown()
        return [], {"absent": f"NVML query failed: {exc}"}
    found: list[NvmlGpu] = []
    problems: list[str] = []
    try:
        for i in range(count):
            try:
                found.append(_nvml_device(pynvml, i))
            except pynvml.NVMLError as exc:  # this GPU only: the others still serve
                problems.append(f"NVML query of GPU {i} failed: {exc}")
    finally:
        pynvml.nvmlShutdown()
    devices = cuda_order(found, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if found and not devices:
        problems.append(f"CUDA_VISIBLE_DEVICES hides all {len(found)} GPUs")
    elif not found and not problems:
        problems.append("no GPU found by NVML")
    if problems:
        info["absent"] = "; ".join(problems)
    return devices, info


@dataclass(frozen=True)
class NvmlGpu:
    """One GPU as NVML sees it (its `device.index` is NVML's index)."""

    device: Device
    pci_bus_id: str


def cuda_order(gpus: list[NvmlGpu], visible: str | None) -> list[Device]:
    """The GPUs CUDA will show, in its numbering: PCI bus order, then CUDA_VISIBLE_DEVICES
    (ordinals or UUID prefixes; as CUDA does, an unknown or repeated entry ends the list,
    and an empty value hides every GPU). `index` becomes the CUDA ordinal."""
    ordered = sorted(gpus, key=lambda g: g.pci_bus_id.lower())
    if visible is not None:
        chosen: list[NvmlGpu] = []
        for entry in (e.strip() for e in visible.split(",")):
            gpu = _visible_entry(ordered, entry)
            if gpu is None or gpu in chosen:
                break
            chosen.append(gpu)
        ordered = chosen
    return [g.device.model_copy(update={"index": i}) for i, g in enumerate(ordered)]


def _visible_entry(ordered: list[NvmlGpu], entry: str) -> NvmlGpu | None:
    if entry.isdigit():
        return ordered[int(entry)] if int(entry) < len(ordered) else None
    wanted = normalized_uuid(entry)
    matches = [g for g in ordered if normalized_uuid(g.device.uuid or "").startswith(wanted)]
    return matches[0] if wanted and len(matches) == 1 else None


def normalized_uuid(uuid: str) -> str:
    """A GPU UUID as NVML ("GPU-8f0b…") and torch ("8f0b…") both reduce to."""
    text = uuid.strip().lower()
    return text.removeprefix("gpu-")


def _nvml_device(pynvml: Any, index: int) -> NvmlGpu:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
    device = Device(
        index=index,
        name=_text(pynvml.nvmlDeviceGetName(handle)),
        kind="cuda",
        memory_total_mb=int(memory.total // MB),
        memory_free_mb=int(memory.free // MB),
        compute_capability=f"{major}.{minor}",
        uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
    )
    return NvmlGpu(device, _text(pynvml.nvmlDeviceGetPciInfo(handle).busId))


def _cuda_problem(gpus: list[Device]) -> str | None:
    """Where torch's CUDA disagrees with NVML; checked only once torch is loaded (a
    model load imports it), so discovery alone never pays torch's import."""
    torch = sys.modules.get("torch")
    if torch is None or not gpus:
        return None
    return cuda_problem(torch, len(gpus))


def cuda_problem(torch: Any, nvml_gpus: int) -> str | None:
    """Why `torch` (the loaded module) cannot use the `nvml_gpus` GPUs NVML shows to
    CUDA, or None."""
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return (
                f"NVML shows {nvml_gpus} GPU(s) but torch {torch.__version__} is built without CUDA"
            )
        return (
            f"NVML shows {nvml_gpus} GPU(s) but torch cannot initialise CUDA "
            f"{torch.version.cuda} (driver too old, or /dev/nvidia-uvm unavailable)"
        )
    seen = torch.cuda.device_count()
    if seen != nvml_gpus:
        return f"NVML shows {nvml_gpus} GPU(s) to CUDA, torch sees {seen}"
    return None


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
