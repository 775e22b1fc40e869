"""Command lines for the server engines (pure): llama.cpp's server, and templates.

A template is split like a shell line first, then each word is filled in, so a
path with spaces stays one argument and nothing is ever run through a shell.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from helexa.config.command_template import check_template
from helexa.errors import BadRequest
from helexa.protocol.neuron import LoadRequest

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Launch:
    """Where a server should run: everything its command line is built from."""

    model: str
    path: str | None
    port: int
    parallel: int  # slots: the neuron's max_in_flight, so admission and server agree
    context_length: int | None  # per slot; None = the server's default
    devices: tuple[int, ...] = ()  # GPU indexes chosen by placement; () = CPU
    host: str = LOOPBACK

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def values(self) -> dict[str, str]:
        return {
            "model": self.model,
            "path": self.path or "",
            "host": self.host,
            "port": str(self.port),
            "parallel": str(self.parallel),
            "context_length": str(self.context_length or ""),
            "device": ",".join(str(d) for d in self.devices),
        }

    def env(self) -> dict[str, str]:
        """Pins the server to the chosen GPUs (none visible on a CPU placement)."""
        return {"CUDA_VISIBLE_DEVICES": ",".join(str(d) for d in self.devices)}


def check_engine(request: LoadRequest) -> None:
    """Refuse a load whose engine fields cannot work, before anything is registered."""
    engine = request.engine or "transformers"
    if engine == "command":
        if not request.command:
            raise BadRequest('engine = "command" needs a command template', param="command")
        check_template(request.command)
    elif request.command is not None:
        raise BadRequest('`command` is only used with engine = "command"', param="command")
    if engine == "llama.cpp" and not request.path:
        raise BadRequest('engine = "llama.cpp" needs `path`, the .gguf file', param="path")


def template_argv(template: str, launch: Launch) -> list[str]:
    """The argv of a `command` engine: the template's words, filled in."""
    check_template(template)
    values: Mapping[str, str] = launch.values()
    return [word.format_map(values) for word in shlex.split(template)]


def llama_server_argv(binary: str, launch: Launch, threads: int = 0) -> list[str]:
    """llama-server bound to loopback, one slot per admitted request.

    `-c` is the whole KV cache, shared by the slots, so it is the per-slot context
    times the slots. `--jinja` renders the GGUF's own chat template (tools included).
    """
    argv = [
        binary,
        "--model",
        launch.path or "",
        "--host",
        launch.host,
        "--port",
        str(launch.port),
        "--parallel",
        str(launch.parallel),
        "--alias",
        launch.model,
        "--jinja",
        "--no-webui",
        # No repacked/extra CPU buffer types: on CPUs that report AMX the AMX buffer
        # path crashed llama-server (SIGSEGV in ggml_backend_amx_mul_mat) on these hosts.
        "--no-repack",
    ]
    if launch.context_length:
        argv += ["--ctx-size", str(launch.context_length * launch.parallel)]
    if threads:
        argv += ["--threads", str(threads)]
    argv += ["--n-gpu-layers", "999" if launch.devices else "0"]
    return argv
