"""Starting a server engine for a load request (blocking; the registry runs it in a thread)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from helexa.errors import BadRequest, InsufficientMemory, LoadFailed, ModelNotFound
from helexa.neuron.config import NeuronConfig
from helexa.neuron.engines.launch import Launch, llama_server_argv, template_argv
from helexa.neuron.engines.process import ServerProcess, free_port, serves_models
from helexa.neuron.engines.served import ServedModel, probe_tokenizer
from helexa.neuron.hardware import DeviceBudget, MemoryBudget
from helexa.protocol.neuron import LoadRequest

WEIGHTS_OVERHEAD = 1.2  # file size -> loaded footprint (KV cache and buffers on top)


def start_server(request: LoadRequest, config: NeuronConfig, budget: MemoryBudget) -> ServedModel:
    """Start the request's server on a free loopback port and wait until it serves."""
    engine = request.engine or "transformers"
    chosen = budget.choose(request.devices or 1)
    devices = tuple(d.index for d in chosen if d.kind == "cuda")
    launch = Launch(
        model=request.model,
        path=request.path,
        port=free_port(),
        parallel=config.neuron.max_in_flight,
        context_length=request.context_length,
        devices=devices,
    )
    if engine == "llama.cpp":
        argv = llama_server_argv(_llama_server(config), launch, config.neuron.torch_threads)
        if not request.path or not Path(request.path).is_file():
            raise ModelNotFound(f"no GGUF file at {request.path}", param="path")
        _check_fits(request.model, Path(request.path), chosen)
    elif engine == "command":
        if not request.command:
            raise BadRequest('engine = "command" needs a command template', param="command")
        argv = template_argv(request.command, launch)
    else:
        raise BadRequest(f"engine {engine!r} does not run as a server", param="engine")
    if shutil.which(argv[0]) is None:
        raise LoadFailed(f"{engine} server {argv[0]!r} is not an executable file or on PATH")
    env = launch.env() if devices or _has_gpu(budget) else {}
    process = ServerProcess(argv, name=f"{engine}:{request.model}", env=env)
    try:
        # Ready = its model list names a model (llama.cpp answers 503 while loading;
        # a helexa neuron lists its model once the preload finished).
        process.wait_ready(lambda: serves_models(launch.base_url), config.engines.start_timeout)
        style, tokenize_path, props = probe_tokenizer(launch.base_url)
        return ServedModel(
            model_id=request.model,
            engine=engine,
            launch=launch,
            process=process,
            dtype=_dtype(engine, request, props),
            context_length=_context_length(launch, props),
            tokenize_style=style,
            tokenize_path=tokenize_path,
            chat_template=_chat_template(props),
            gpu_memory_mb=_nvml_process_memory_mb if devices else None,
            stop_timeout=config.engines.stop_timeout,
        )
    except RuntimeError as exc:
        process.stop(grace=1.0)
        raise LoadFailed(str(exc)) from exc
    except BaseException:
        process.stop(grace=1.0)
        raise


def _check_fits(model: str, gguf: Path, chosen: tuple[DeviceBudget, ...]) -> None:
    """The same budget rule as the in-process engine: weights x 1.2 must fit the device."""
    needed_mb = gguf.stat().st_size * WEIGHTS_OVERHEAD / 2**20
    free_mb = min((d.free_mb for d in chosen), default=0)
    if chosen and needed_mb > free_mb:
        raise InsufficientMemory(
            f"{model}: needs about {needed_mb:.0f} MB, {free_mb} MB free within the budget"
        )


def _llama_server(config: NeuronConfig) -> str:
    binary = config.engines.llama_server
    found = shutil.which(binary) if os.sep not in binary else binary
    return found or binary


def _has_gpu(budget: MemoryBudget) -> bool:
    return budget.kind == "cuda"


def _dtype(engine: str, request: LoadRequest, props: dict[str, object]) -> str:
    if engine == "llama.cpp":
        return "gguf"
    return request.dtype or "auto"


def _context_length(launch: Launch, props: dict[str, object]) -> int:
    """Per-slot context: what llama.cpp says it allotted, else what was asked for."""
    settings = props.get("default_generation_settings")
    if isinstance(settings, dict) and isinstance(settings.get("n_ctx"), int):
        return int(settings["n_ctx"])
    return launch.context_length or 0


def _chat_template(props: dict[str, object]) -> str | None:
    template = props.get("chat_template")
    return template if isinstance(template, str) else None


def _nvml_process_memory_mb(pids: list[int]) -> int:
    """GPU memory the given processes hold, summed over devices (NVML)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return 0
    try:
        total = 0
        wanted = set(pids)
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid in wanted and proc.usedGpuMemory:
                    total += int(proc.usedGpuMemory)
        return total // (1024 * 1024)
    finally:
        pynvml.nvmlShutdown()
