"""Putting a model on GPUs: torch's ordinals by UUID, the device map, reusable memory.

NVML and CUDA number GPUs differently (NVML ignores CUDA_VISIBLE_DEVICES, and
CUDA's default order is fastest first), so a device chosen from NVML's
figures is found in torch by its UUID, never by its index. Where the two
disagree (torch built without CUDA, a driver too old for torch's CUDA, a GPU
hidden from the process) the load fails saying so instead of landing on the
wrong GPU or on none.

A model split over several GPUs gets an explicit device map with a per-GPU
limit that leaves room for the KV cache, and a map that puts anything on the
CPU or disk (accelerate's answer when the GPUs are too small) is refused: it
would "load", then decode at a crawl with a footprint that hides the weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from helexa.errors import InsufficientMemory, LoadFailed
from helexa.neuron.hardware import DeviceBudget, cuda_problem, normalized_uuid
from helexa.protocol.neuron import Device

MB = 1024 * 1024


def torch_uuids() -> list[str]:
    """The UUID of each GPU torch sees, by torch ordinal."""
    count = torch.cuda.device_count()
    return [str(torch.cuda.get_device_properties(i).uuid) for i in range(count)]


def ordinals_by_uuid(devices: Sequence[DeviceBudget], uuids: Sequence[str]) -> list[int]:
    """torch's ordinal of each device, found by its UUID in torch's `uuids`."""
    by_uuid = {normalized_uuid(u): i for i, u in enumerate(uuids)}
    ordinals = []
    for device in devices:
        if device.uuid is None:  # a device reported without one: its index is all there is
            ordinals.append(device.index)
            continue
        ordinal = by_uuid.get(normalized_uuid(device.uuid))
        if ordinal is None:
            raise LoadFailed(
                f"GPU {device.uuid} (NVML) is not among the {len(uuids)} GPU(s) torch "
                "sees; check CUDA_VISIBLE_DEVICES and the driver"
            )
        ordinals.append(ordinal)
    return ordinals


def cuda_ordinals(devices: Sequence[DeviceBudget]) -> list[int]:
    """torch ordinals of the chosen GPUs ([] for a CPU load); LoadFailed when CUDA can't."""
    if not devices or devices[0].kind != "cuda":
        return []
    if not torch.cuda.is_available():
        raise LoadFailed(cuda_problem(torch, len(devices)) or "torch cannot use CUDA")
    return ordinals_by_uuid(devices, torch_uuids())


def torch_devices() -> list[Device]:
    """The GPUs as torch sees them: the budget's source when NVML fails but CUDA works."""
    if not torch.cuda.is_available():
        return []
    devices = []
    for ordinal in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(ordinal)
        props = torch.cuda.get_device_properties(ordinal)
        devices.append(
            Device(
                index=ordinal,
                name=props.name,
                kind="cuda",
                memory_total_mb=int(total // MB),
                memory_free_mb=int(free // MB),
                compute_capability=f"{props.major}.{props.minor}",
                uuid=str(props.uuid),
            )
        )
    return devices


def reclaimable_mb() -> dict[str, int]:
    """Per GPU UUID: memory torch's caching allocator holds for this process but does not
    use (reserved - allocated). NVML counts it as used; the next load reuses it."""
    if not torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        return {}
    spare = {}
    for ordinal, uuid in enumerate(torch_uuids()):
        cached = torch.cuda.memory_reserved(ordinal) - torch.cuda.memory_allocated(ordinal)
        spare[normalized_uuid(uuid)] = int(cached // MB)
    return spare


def device_map(
    directory: Path,
    dtype: torch.dtype,
    ordinals: Sequence[int],
    limits_mb: Sequence[int],
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """from_pretrained's placement: one GPU whole, or a split within `limits_mb` per GPU.
    `source`: from_pretrained's extra arguments naming the weights (a GGUF's `gguf_file`)."""
    if len(ordinals) == 1:
        return {"": ordinals[0]}
    from accelerate import infer_auto_device_map, init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(directory, local_files_only=True, **(source or {}))
    with init_empty_weights():
        empty: Any = AutoModelForCausalLM.from_config(config, dtype=dtype)  # type: ignore[no-untyped-call]
    empty.tie_weights()  # tied embeddings count once, on one GPU
    placed = infer_auto_device_map(
        empty,
        max_memory={o: limit * MB for o, limit in zip(ordinals, limits_mb, strict=True)},
        no_split_module_classes=list(getattr(empty, "_no_split_modules", None) or []),
        dtype=dtype,
    )
    check_on_gpus(placed, ordinals)
    return dict(placed)


def check_on_gpus(placed: Mapping[str, Any], ordinals: Sequence[int]) -> None:
    """Refuse a device map with anything off the chosen GPUs (CPU or disk offload)."""
    elsewhere = sorted({str(d) for d in placed.values() if _ordinal(d) not in ordinals})
    if elsewhere:
        raise InsufficientMemory(
            f"the model does not fit on GPU(s) {list(ordinals)} with room for its KV cache "
            f"(it would be offloaded to {', '.join(elsewhere)})"
        )


def _ordinal(place: Any) -> int | None:
    """The CUDA ordinal a device-map value names (0, "0", "cuda:0", torch.device), else None."""
    if isinstance(place, int):
        return place
    text = str(place)
    if text.isdigit():
        return int(text)
    if text.startswith("cuda:") and text[5:].isdigit():
        return int(text[5:])
    return None
