"""Real neurons for tests, benchmarks and demos, on free loopback ports.

- `NeuronProcess`: a `helexa neuron` subprocess with a given neuron.toml; waits for
  /health by polling, tears down with SIGTERM (then SIGKILL). An async context
  manager, and a sync one too:

      async with NeuronProcess(config_path) as neuron: ...   # neuron.url
      with NeuronProcess(config_path) as neuron: ...

- `InProcessNeuron.start(config)`: the neuron app under uvicorn on a background
  task of the running loop (fast, and a test can reach into its state), with a
  load counter around the real engine loader.
- `serve_in_process(app)`: any ASGI app the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from helexa.neuron.app import build_app
from helexa.neuron.config import NeuronConfig
from helexa.neuron.limits import neuron_protocol
from helexa.neuron.loading import engine_loader
from helexa.neuron.registry import Loader, ServingModel
from helexa.neuron.state import NeuronState
from helexa.protocol.neuron import LoadRequest

HEALTH_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now on `host` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class NeuronProcess:
    """`helexa neuron --config CONFIG --listen 127.0.0.1:<free port>` as a child process."""

    def __init__(
        self,
        config: Path | None = None,
        *,
        port: int | None = None,
        token: str | None = None,
        env: dict[str, str] | None = None,
        health_timeout_s: float = HEALTH_TIMEOUT_S,
        log_path: Path | None = None,
    ) -> None:
        self.config = config
        self.port = port or free_port()
        self.token = token
        self.health_timeout_s = health_timeout_s
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "helexa", "neuron", "--listen", f"127.0.0.1:{self.port}"]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        return cmd

    # --- lifecycle (sync core; the async API runs it in a thread) ---------

    def start(self) -> NeuronProcess:
        self._log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command(), env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_healthy()
        return self

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; returns the exit code."""
        proc, self.process = self.process, None
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            code = proc.returncode
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        return code

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.health_timeout_s
        with httpx.Client(timeout=1.0) as client:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"helexa neuron exited with {self.process.returncode} before /health "
                        f"answered (command: {' '.join(self.command())})"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/health").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(
                        f"{self.url}/health did not answer in {self.health_timeout_s:g}s"
                    )
                time.sleep(0.05)

    def __enter__(self) -> NeuronProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> NeuronProcess:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


@contextlib.asynccontextmanager
async def serve_in_process(
    app: Any, host: str = "127.0.0.1", *, http: Any = "auto"
) -> AsyncIterator[str]:
    """Run an ASGI app with uvicorn on an ephemeral port of `host`; yields its base URL.

    `http` is uvicorn's protocol option (the gateway passes the one `helexa serve` uses).
    """
    import uvicorn

    config = uvicorn.Config(app, host=host, port=0, log_level="warning", lifespan="on", http=http)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()  # surfaces a startup failure
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@dataclass
class CountingLoader:
    """The real engine loader, recording every load it actually runs."""

    inner: Loader
    calls: list[str] = field(default_factory=list)

    def __call__(self, request: LoadRequest) -> ServingModel:
        self.calls.append(request.model)
        return self.inner(request)


@dataclass
class InProcessNeuron:
    app: Any
    url: str
    loader: CountingLoader
    token: str | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, config: NeuronConfig, token: str | None = None
    ) -> AsyncIterator[InProcessNeuron]:
        loader = CountingLoader(engine_loader(config))
        app = build_app(config, loader=loader, token=token)
        async with serve_in_process(app, http=neuron_protocol(config)) as url:
            yield cls(app, url, loader, token)

    @property
    def state(self) -> NeuronState:
        state: NeuronState = self.app.state.neuron
        return state

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def http(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        """A client for this neuron, with its token unless `headers` say otherwise."""
        merged = {**self.headers, **(headers or {})}
        return httpx.AsyncClient(base_url=self.url, headers=merged, timeout=30)

    def openai(self) -> Any:
        """An `openai.AsyncOpenAI` client for this neuron (no retries: tests see every error)."""
        import openai

        return openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=self.token or "unused", max_retries=0, timeout=30
        )

    async def load(self, model: str, path: Path | None = None, **extra: Any) -> dict[str, Any]:
        """POST /models/load; raises on any status but 200."""
        body = {"model": model, **({"path": str(path)} if path else {}), **extra}
        async with self.http() as client:
            response = await client.post("/models/load", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"load of {model} failed: {response.status_code} {response.text}")
        loaded: dict[str, Any] = response.json()
        return loaded


TINY_MODEL_ID = "helexa/tiny"  # the id tests load helexa.testing.tiny_model under


def chat_body(model: str = TINY_MODEL_ID, content: str = "hello", **fields: Any) -> dict[str, Any]:
    """A /v1/chat/completions body (kwargs-compatible with the openai SDK's create())."""
    return {"model": model, "messages": [{"role": "user", "content": content}], **fields}


async def eventually(
    predicate: Callable[[], bool], within_s: float = 5.0, poll_s: float = 0.01
) -> None:
    """Poll `predicate` until it holds; AssertionError after `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(poll_s)
    if not predicate():
        raise AssertionError(f"condition not met within {within_s:g}s")


def exact_length(tokens: int) -> dict[str, Any]:
    """SDK create() kwargs that make random weights generate exactly `tokens` tokens."""
    return {"max_tokens": tokens, "extra_body": {"min_tokens": tokens, "ignore_eos": True}}
