"""The neuron's own API (docs/neuron.md): the contract between neuron and gateway."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from helexa.protocol.base import WireModel

# Sent by the gateway with the calling key's priority: a neuron's full admission queue
# serves higher priorities first (absent = 0).
PRIORITY_HEADER = "x-helexa-priority"

ModelState = Literal["loading", "loaded", "unloading", "failed"]
DeviceKind = Literal["cuda", "cpu"]
Dtype = Literal["auto", "bfloat16", "float16", "float32"]
# Who runs a model: helexa's in-process torch engine, llama.cpp's server, or any
# OpenAI-compatible server started from a command template (docs/neuron.md "Engines").
EngineName = Literal["transformers", "llama.cpp", "command"]


class Health(WireModel):
    status: Literal["ok"] = "ok"
    uptime_s: float


class Device(WireModel):
    index: int
    name: str
    kind: DeviceKind
    memory_total_mb: int
    memory_free_mb: int
    compute_capability: str | None = None
    uuid: str | None = None  # GPUs: NVML's UUID, which the engine maps to torch's ordinal


class EngineInfo(WireModel):
    torch: str | None = None
    transformers: str | None = None
    cuda: str | None = None
    driver: str | None = None
    nvml: str | None = None  # why NVML is absent, when it is ("not installed", "no GPU", ...)
    cuda_problem: str | None = None  # NVML and torch's CUDA disagree (once torch is loaded)


class Discovery(WireModel):
    hostname: str
    name: str | None = None
    version: str
    engine: EngineInfo
    devices: list[Device]
    # Weight formats this neuron loads: "safetensors", and "gguf" when the gguf package is there.
    formats: list[str] = Field(default_factory=list)


class LoadProgress(WireModel):
    """How far a load has read its weight files (docs/neuron.md "Load progress")."""

    bytes_done: int = 0
    bytes_total: int = 0
    shards_done: int = 0
    shards_total: int = 0

    @property
    def percent(self) -> int | None:
        """0..100 by bytes; None when the total is unknown."""
        if self.bytes_total <= 0:
            return None
        return max(0, min(100, self.bytes_done * 100 // self.bytes_total))


class ModelInfo(WireModel):
    id: str
    state: ModelState
    error: str | None = None
    devices: list[int] = Field(default_factory=list)
    memory_mb: int = 0
    dtype: str | None = None
    context_length: int | None = None
    in_flight: int = 0
    queued: int = 0
    max_in_flight: int = 1
    loaded_at: float | None = None  # unix seconds
    last_used_at: float | None = None  # unix seconds
    load_seconds: float | None = None
    # e.g. "chat", "completions", "tools", "thinking"
    capabilities: list[str] = Field(default_factory=list)
    # As requested at load, so the reconciler can tell a copy models.toml moved away from.
    path: str | None = None
    revision: str | None = None
    # What the weights were read from: "safetensors" or "gguf" (dequantized to `dtype`).
    format: str | None = None
    quantization: str | None = None  # the GGUF file's type, e.g. "Q4_1"; None = not quantized
    engine: EngineName = "transformers"
    progress: LoadProgress | None = None  # while loading, when the neuron can measure it
    # The in-process engine's prefix cache: its budget (0 = off) and the bytes it holds now,
    # which `memory_mb` includes.
    prefix_cache_mb: int = 0
    prefix_cache_bytes: int = 0


class ModelsList(WireModel):
    models: list[ModelInfo]
    cycles: int = 0


class LoadRequest(WireModel):
    model: str
    path: str | None = None
    revision: str | None = None
    dtype: Dtype | None = None
    devices: int | None = None
    context_length: int | None = None
    sampling: dict[str, Any] | None = None
    engine: EngineName | None = None  # None = "transformers"
    command: str | None = None  # the template, for engine = "command"
    # The model's prefix cache budget (models.toml's prefix_cache_mb); None = the neuron's.
    prefix_cache_mb: int | None = Field(default=None, ge=0)


class UnloadRequest(WireModel):
    model: str
    drain_timeout_s: float | None = None


class TokenizeRequest(WireModel):
    model: str
    path: str | None = None
    messages: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    prompt: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None


class TokenizeResponse(WireModel):
    count: int
