"""Loading a model: find the weights, check they fit, load, measure the real footprint.

Blocking by design: the caller runs `load` in a worker thread. Any failure
after allocation started frees what was allocated before raising.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import psutil
import torch

from helexa.errors import InsufficientMemory, LoadFailed, ModelNotFound
from helexa.neuron.engine import gguf
from helexa.neuron.engine.loaded import LoadedModel
from helexa.neuron.engine.spec import LoadSpec
from helexa.neuron.hardware import DeviceBudget, MemoryBudget

log = logging.getLogger("helexa.neuron.engine")

MB = 1024 * 1024
WEIGHTS_OVERHEAD = 1.2  # activations, KV cache and allocator slack on top of the weights
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]
TORCH_THREADS_ENV = "HELEXA_TORCH_THREADS"


def load(spec: LoadSpec, budget: MemoryBudget) -> LoadedModel:
    """Load `spec` onto devices chosen from `budget`; raises ModelNotFound,
    InsufficientMemory or LoadFailed."""
    started = time.monotonic()
    configure_torch_threads()
    packed = gguf.inspect(spec.model_id, spec.path) if gguf.is_gguf_path(spec.path) else None
    directory = packed.directory if packed else resolve_directory(spec)
    devices = _choose_devices(spec, budget)
    dtype = resolve_dtype(spec.dtype, devices)
    weights = packed.dequantized_bytes(str(dtype)) if packed else weights_bytes(directory)
    _check_fits(spec, weights, devices)
    source = packed.pretrained_kwargs if packed else {}
    before = _used_bytes(devices)
    model: Any = None
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True, **source)
        model = AutoModelForCausalLM.from_pretrained(
            directory, dtype=dtype, local_files_only=True, **source, **_placement(devices)
        )
        model.eval()
        memory_mb = _footprint_mb(model, devices, before)
        return LoadedModel(
            model_id=spec.model_id,
            model=model,
            tokenizer=tokenizer,
            dtype=str(dtype).removeprefix("torch."),
            devices=[d.index for d in devices],
            device=_input_device(model),
            memory_mb=memory_mb,
            context_length=_context_length(model, spec),
            max_positions=_max_positions(model),
            eos_token_ids=_eos_token_ids(model, tokenizer),
            load_seconds=time.monotonic() - started,
            weights_format="gguf" if packed else "safetensors",
            quantization=packed.quantization if packed else None,
        )
    except Exception as exc:
        model = None
        _release(devices)
        if isinstance(exc, torch.OutOfMemoryError):
            raise InsufficientMemory(f"{spec.model_id}: out of memory while loading") from exc
        raise LoadFailed(f"{spec.model_id}: {type(exc).__name__}: {exc}") from exc


def configure_torch_threads(threads: int | None = None) -> None:
    """Set torch's intra-op threads from `threads` or HELEXA_TORCH_THREADS; else leave it."""
    if threads is None:
        value = os.environ.get(TORCH_THREADS_ENV, "").strip()
        threads = int(value) if value else 0
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def resolve_directory(spec: LoadSpec) -> Path:
    """The local directory holding the model: `path`, or a (downloaded) hub snapshot."""
    if spec.path is not None:
        if not (spec.path / "config.json").is_file():
            raise ModelNotFound(f"{spec.model_id}: no model at {spec.path}")
        return spec.path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(
                spec.model_id,
                revision=spec.revision,
                cache_dir=spec.cache_dir,
                local_files_only=spec.offline,
                allow_patterns=HUB_PATTERNS,
            )
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, ValueError) as exc:
        raise ModelNotFound(f"{spec.model_id}: {exc}") from exc
    except OSError as exc:
        raise LoadFailed(f"{spec.model_id}: {exc}") from exc


def weights_bytes(directory: Path) -> int:
    """Size of the weights: the safetensors index's total_size, else the files' sizes."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        total = json.loads(index.read_text()).get("metadata", {}).get("total_size")
        if isinstance(total, int):
            return total
    files = list(directory.glob("*.safetensors")) or list(directory.glob("*.bin"))
    return sum(f.stat().st_size for f in files)


def resolve_dtype(name: str, devices: tuple[DeviceBudget, ...]) -> torch.dtype:
    """auto: bf16 on GPUs with compute capability >= 8.0, fp16 on older ones, fp32 on CPU."""
    if name != "auto":
        return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(name, torch.float32)
    if not devices or devices[0].kind == "cpu":
        return torch.float32
    capabilities = [torch.cuda.get_device_capability(d.index) for d in devices]
    return torch.bfloat16 if min(capabilities) >= (8, 0) else torch.float16


def _choose_devices(spec: LoadSpec, budget: MemoryBudget) -> tuple[DeviceBudget, ...]:
    devices = budget.choose(spec.devices)
    if budget.kind == "cuda" and len(devices) < spec.devices:
        raise InsufficientMemory(
            f"{spec.model_id}: needs {spec.devices} GPUs, this host has {len(devices)}"
        )
    if not devices:
        raise InsufficientMemory(f"{spec.model_id}: no device to load onto")
    return devices


def _check_fits(spec: LoadSpec, weights: int, devices: tuple[DeviceBudget, ...]) -> None:
    needed_mb = weights * WEIGHTS_OVERHEAD / MB
    free_mb = sum(d.free_mb for d in devices)
    if needed_mb > free_mb:
        raise InsufficientMemory(
            f"{spec.model_id}: needs ~{needed_mb:.0f} MB (weights x {WEIGHTS_OVERHEAD}), "
            f"{free_mb} MB free on device(s) {[d.index for d in devices]}"
        )


def _placement(devices: tuple[DeviceBudget, ...]) -> dict[str, Any]:
    if devices[0].kind == "cpu":
        return {}
    if len(devices) == 1:
        return {"device_map": {"": devices[0].index}}
    return {
        "device_map": "auto",
        "max_memory": {d.index: f"{d.free_mb}MiB" for d in devices},
    }


def _used_bytes(devices: tuple[DeviceBudget, ...]) -> int:
    if devices[0].kind == "cpu":
        return int(psutil.Process().memory_info().rss)
    return sum(torch.cuda.memory_allocated(d.index) for d in devices)


def _footprint_mb(model: Any, devices: tuple[DeviceBudget, ...], before: int) -> int:
    """Measured growth; on CPU, mmapped weights may not show in RSS, so never report
    less than the parameters and buffers themselves."""
    grown = _used_bytes(devices) - before
    if devices[0].kind == "cpu":
        tensors = [*model.parameters(), *model.buffers()]
        grown = max(grown, sum(t.numel() * t.element_size() for t in tensors))
    return max(1, round(grown / MB))


def _input_device(model: Any) -> torch.device:
    device: torch.device = model.get_input_embeddings().weight.device
    return device


def _max_positions(model: Any) -> int:
    return int(getattr(model.config, "max_position_embeddings", 0) or 0) or 2048


def _context_length(model: Any, spec: LoadSpec) -> int:
    """The configured cap when it is below the model's own limit (enforced by the app)."""
    limit = _max_positions(model)
    return min(spec.context_length, limit) if spec.context_length else limit


def _eos_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)


def _release(devices: tuple[DeviceBudget, ...]) -> None:
    gc.collect()
    if devices[0].kind == "cuda":
        torch.cuda.empty_cache()
