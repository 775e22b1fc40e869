"""A model served by a child server process (llama.cpp's server, or a command template).

It stands in the registry like an in-process model: memory, devices, context
length, close(). Requests never reach `stream`: the routes relay them to
`base_url` (relay.py), and count tokens through the server's own tokenizer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from helexa.neuron.engines.launch import Launch
from helexa.neuron.engines.process import ServerProcess, get_json, get_status

TokenizeStyle = str  # "llama.cpp" (/apply-template + /tokenize) | "openai" (/tokenize count)


@dataclass(frozen=True)
class ChatTemplate:
    """What the registry reads off a tokenizer for capabilities: the template text."""

    chat_template: str | None


class ServedModel:
    """A model held by a server process this neuron started and owns."""

    def __init__(
        self,
        *,
        model_id: str,
        engine: str,
        launch: Launch,
        process: ServerProcess,
        dtype: str,
        context_length: int,
        tokenize_style: TokenizeStyle,
        tokenize_path: str,
        chat_template: str | None,
        gpu_memory_mb: Callable[[list[int]], int] | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        self.model_id = model_id
        self.engine = engine
        self.launch = launch
        self.process = process
        self.dtype = dtype
        self.devices = list(launch.devices) or [0]
        self.context_length = context_length
        self.tokenize_style = tokenize_style
        self.tokenize_path = tokenize_path
        # Not a tokenizer: requests are tokenized by the server. Read for capabilities.
        self.tokenizer = ChatTemplate(chat_template)
        self._gpu_memory_mb = gpu_memory_mb
        self._stop_timeout = stop_timeout

    @property
    def base_url(self) -> str:
        return self.launch.base_url

    @property
    def memory_mb(self) -> int:
        """Measured now: the process tree's RSS on CPU, NVML per-process memory on GPU."""
        pids = [self.process.pid]
        if self.launch.devices and self._gpu_memory_mb is not None:
            from helexa.neuron.engines.process import descendants

            return self._gpu_memory_mb(pids + descendants(self.process.pid))
        return self.process.rss_mb()

    def on_unexpected_exit(self, callback: Callable[[str], None]) -> None:
        self.process.on_unexpected_exit(callback)

    def stream(self, prompt_ids: list[int], params: Any, stats: Any = None) -> AsyncIterator[int]:
        raise NotImplementedError("requests to a server engine are relayed, not streamed")

    def close(self) -> None:
        """Stop the server: TERM, then KILL after a grace period (requests drained before)."""
        self.process.stop(grace=self._stop_timeout)


def probe_tokenizer(base_url: str) -> tuple[TokenizeStyle, str, dict[str, Any]]:
    """How this server counts tokens: llama.cpp's own endpoints when it has /props, else
    an OpenAI-style `/tokenize` (vLLM) or `/v1/tokenize` (helexa) returning a count.
    The third item is what the server says about the model (llama.cpp's /props, or
    vLLM's `max_model_len` from /v1/models)."""
    if get_status(base_url + "/props") == 200:
        props = get_json(base_url + "/props")
        return "llama.cpp", "/tokenize", props if isinstance(props, dict) else {}
    facts: dict[str, Any] = {}
    listing = get_json(base_url + "/v1/models")
    first = (listing.get("data") or [{}])[0] if isinstance(listing, dict) else {}
    if isinstance(first, dict) and isinstance(first.get("max_model_len"), int):
        facts["default_generation_settings"] = {"n_ctx": first["max_model_len"]}
    for path in ("/tokenize", "/v1/tokenize"):
        # A GET on a POST-only route answers 405; an absent one 404.
        if get_status(base_url + path) not in (404, None):
            return "openai", path, facts
    return "openai", "/tokenize", facts
