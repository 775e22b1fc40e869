"""Loading a model: find the weights, check they fit, load, measure the real footprint.

Blocking by design: the caller runs `load` in a worker thread. Any failure
after allocation started frees what was allocated before raising: the
failure's traceback frames are cleared first, since they still reference the
half-loaded model. Out of memory, in whatever form it arrives, is a 507.

GPUs are addressed by torch's ordinal, found from the budget's NVML UUIDs
(placement.py); a multi-GPU map that would offload to CPU or disk is refused.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
import torch

from helexa.errors import APIError, InsufficientMemory, LoadFailed, ModelNotFound
from helexa.neuron.engine import gguf, placement
from helexa.neuron.engine.loaded import LoadedModel
from helexa.neuron.engine.oom import free_cached_memory, is_out_of_memory
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
    ordinals = placement.cuda_ordinals(devices)  # [] on the CPU
    dtype = resolve_dtype(spec.dtype, devices, ordinals)
    weights = packed.dequantized_bytes(str(dtype)) if packed else weights_bytes(directory)
    cache_mb = _check_fits(spec, weights, devices)
    source = packed.pretrained_kwargs if packed else {}
    before = _used_bytes(devices)
    model: Any = None
    failure: APIError
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True, **source)
        model = AutoModelForCausalLM.from_pretrained(
            directory,
            dtype=dtype,
            local_files_only=True,
            **source,
            **_placement(directory, dtype, devices, ordinals, source),
        )
        if ordinals:
            placement.check_on_gpus(getattr(model, "hf_device_map", None) or {}, ordinals)
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
            prefix_cache_mb=cache_mb,
            prefill_chunk_tokens=spec.prefill_chunk_tokens,
        )
    except Exception as exc:
        model = None
        failure = _load_failure(spec, exc)
        log.warning("load of %s failed", spec.model_id, exc_info=True)
        _clear_frames(exc)
    # Outside the except block, so no live traceback pins the half-loaded model.
    free_cached_memory()
    raise failure


def _load_failure(spec: LoadSpec, exc: Exception) -> APIError:
    if isinstance(exc, APIError):
        return exc
    if is_out_of_memory(exc):  # also as a RuntimeError from transformers' weight conversion
        return InsufficientMemory(f"{spec.model_id}: out of memory while loading: {exc}")
    return LoadFailed(f"{spec.model_id}: {type(exc).__name__}: {exc}")


def _clear_frames(exc: BaseException) -> None:
    """Drop the locals of the failed call's frames (and of its causes')."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


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


def resolve_dtype(
    name: str, devices: tuple[DeviceBudget, ...], ordinals: Sequence[int] | None = None
) -> torch.dtype:
    """auto: bf16 on GPUs with compute capability >= 8.0, fp16 on older ones, fp32 on CPU.
    `ordinals` are the GPUs' torch ordinals (default: their indexes)."""
    if name != "auto":
        return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(name, torch.float32)
    if not devices or devices[0].kind == "cpu":
        return torch.float32
    ordinals = ordinals or [d.index for d in devices]
    capabilities = [torch.cuda.get_device_capability(o) for o in ordinals]
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


def _check_fits(spec: LoadSpec, weights: int, devices: tuple[DeviceBudget, ...]) -> int:
    """Raise unless the weights fit; returns the prefix cache budget (MB): as asked, or
    what the devices have left past the weights (the cache then never grows past the
    free memory or `max_memory_mb` cap the load saw)."""
    needed_mb = weights * WEIGHTS_OVERHEAD / MB
    free_mb = sum(d.free_mb for d in devices)
    if needed_mb > free_mb:
        raise InsufficientMemory(
            f"{spec.model_id}: needs ~{needed_mb:.0f} MB (weights x {WEIGHTS_OVERHEAD}), "
            f"{free_mb} MB free on device(s) {[d.index for d in devices]}"
        )
    return max(0, min(spec.prefix_cache_mb, int(free_mb - needed_mb)))


def _placement(
    directory: Path,
    dtype: torch.dtype,
    devices: tuple[DeviceBudget, ...],
    ordinals: list[int],
    source: Mapping[str, Any],
) -> dict[str, Any]:
    if not ordinals:
        return {}
    # Each GPU holds at most its free memory / WEIGHTS_OVERHEAD of weights: the rest
    # is its share of the KV cache and activations.
    limits = [int(d.free_mb / WEIGHTS_OVERHEAD) for d in devices]
    return {"device_map": placement.device_map(directory, dtype, ordinals, limits, source)}


def _used_bytes(devices: tuple[DeviceBudget, ...]) -> int:
    return int(psutil.Process().memory_info().rss) if devices[0].kind == "cpu" else 0


def _footprint_mb(model: Any, devices: tuple[DeviceBudget, ...], before: int) -> int:
    """The model's own tensors; on CPU, RSS growth when larger (what the process really
    took). On GPUs only the tensors: torch.cuda.memory_allocated counts the whole
    process, other models' growing KV caches included."""
    tensors = [*model.parameters(), *model.buffers()]
    own: int = sum(t.numel() * t.element_size() for t in tensors)
    grown = _used_bytes(devices) - before if devices[0].kind == "cpu" else 0
    return max(1, round(max(own, grown) / MB))


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
