"""neuron.toml: the per-host daemon's configuration (docs/neuron.md).

Strict like every helexa config file: unknown keys are errors naming
file:line:key, relative paths resolve against the file that holds them,
durations are "30s" / "5m" / seconds.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from helexa.config.base import StrictModel
from helexa.config.durations import Duration
from helexa.config.fields import ListenAddress, RelativePath
from helexa.config.loader import load_toml

DEFAULT_LISTEN = "0.0.0.0:13131"


class NeuronSection(StrictModel):
    listen: ListenAddress = DEFAULT_LISTEN
    name: str = Field(default_factory=socket.gethostname)
    token_file: RelativePath | None = None
    cache_dir: RelativePath | None = None  # HF cache; None = HF's default
    offline: bool = False  # forbid downloads (HF_HUB_OFFLINE)
    # Load paths must lie inside one of these (resolved); empty = any absolute path.
    model_roots: list[RelativePath] = Field(default_factory=list)
    allow_hub_ids: bool = False  # loads by hub id (downloads) when offline = false
    max_in_flight: int = Field(default=4, ge=1)  # per model
    max_queue: int = Field(default=16, ge=0)  # per model
    queue_timeout: Duration = 30.0
    failed_load_ttl: Duration = 300.0  # a failed load stays in /models this long
    drain_timeout: Duration = 30.0  # /models/unload without drain_timeout_s
    keep_alive_interval: Duration = 1.0  # SSE comment after this much silence
    torch_threads: int = Field(default=0, ge=0)  # 0 = torch's default
    max_body_mb: int = Field(default=32, ge=1)  # larger request bodies get 413
    # Connection limits (helexa.httpguard), read at start.
    max_header_kb: int = Field(default=64, ge=1)  # a larger request head gets 431
    header_timeout: Duration = 10.0  # the whole head, from connect or the last response
    body_timeout: Duration = 60.0  # the whole body, from its head
    max_connections: int = Field(default=1024, ge=1)  # past it, 503
    # The in-process engine (docs/neuron.md "Prefix cache and chunked prefill").
    prefix_cache_mb: int = Field(default=512, ge=0)  # per model, unless its load says; 0 = off
    # Per iteration: "auto" (a chunk costs about one decode step), a count, 0 = whole prompts.
    prefill_chunk_tokens: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"


class DevicesSection(StrictModel):
    reserve_mb: int = Field(default=1024, ge=0)  # headroom left free on every device
    max_memory_mb: int = Field(default=0, ge=0)  # cap per device, CPU included; 0 = no cap


class EnginesSection(StrictModel):
    """The server engines (docs/neuron.md "Engines")."""

    # llama.cpp's server: a path, or a name looked up on PATH. `make` builds one into
    # .cache/llama.cpp/bin/llama-server.
    llama_server: str = "llama-server"
    start_timeout: Duration = 300.0  # until the started server answers as ready
    stop_timeout: Duration = 10.0  # TERM, then KILL after this long


class PreloadEntry(StrictModel):
    model: str
    path: RelativePath | None = None
    revision: str | None = None
    dtype: Literal["auto", "bfloat16", "float16", "float32"] | None = None
    devices: int | None = Field(default=None, ge=1)
    context_length: int | None = Field(default=None, ge=1)
    sampling: dict[str, Any] | None = None
    engine: Literal["transformers", "llama.cpp", "command"] | None = None
    command: str | None = None
    prefix_cache_mb: int | None = Field(default=None, ge=0)  # None = [neuron] prefix_cache_mb


class NeuronConfig(StrictModel):
    neuron: NeuronSection = Field(default_factory=NeuronSection)
    devices: DevicesSection = Field(default_factory=DevicesSection)
    engines: EnginesSection = Field(default_factory=EnginesSection)
    preload: list[PreloadEntry] = Field(default_factory=list)

    def read_token(self) -> str | None:
        """The bearer token, or None when no token_file is set.

        A missing or empty file raises: an empty one must not open the neuron to anyone.
        """
        if self.neuron.token_file is None:
            return None
        token = self.neuron.token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(
                f"token_file {self.neuron.token_file} is empty: write the fleet's shared "
                "secret into it (e.g. `openssl rand -hex 32`)"
            )
        return token


def load_neuron_config(path: Path | None) -> NeuronConfig:
    """Read neuron.toml strictly; None gives the defaults."""
    if path is None:
        return NeuronConfig()
    config: NeuronConfig = load_toml(path, NeuronConfig)
    return config
