"""A keyed gateway over one keyed in-process neuron holding the tiny model.

The shared scene of the hostile-input and auth tests: both sides have secrets
(`GATEWAY_KEY`, `NEURON_TOKEN`) and a small body limit, so every guard is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from helexa.neuron.config import NeuronConfig
from helexa.testing.neuron_proc import TINY_MODEL_ID, InProcessNeuron
from tests.gateway.harness import RunningGateway, run_gateway, write_configs

GATEWAY_KEY = "gw-key-7c1f0e"
NEURON_TOKEN = "neuron-token-5d2b9a"
MAX_BODY_MB = 1
# Short connection deadlines, so the slow-client tests see them hit (helexa.httpguard).
HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 3.0


@dataclass
class Stack:
    neuron: InProcessNeuron
    gateway: RunningGateway

    def gateway_http(self, key: str | None = GATEWAY_KEY) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.gateway.url, headers=headers, timeout=60)

    def neuron_http(self, token: str | None = NEURON_TOKEN) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.neuron.url, headers=headers, timeout=60)


@contextlib.asynccontextmanager
async def keyed_stack(directory: Path, model_dir: Path) -> AsyncIterator[Stack]:
    config = NeuronConfig.model_validate(
        {
            "neuron": {
                "name": "a",
                "offline": True,
                "max_body_mb": MAX_BODY_MB,
                "header_timeout": HEADER_TIMEOUT_S,
                "body_timeout": BODY_TIMEOUT_S,
            },
            "devices": {"reserve_mb": 0},
        }
    )
    token_file = directory / "fleet.token"
    token_file.write_text(NEURON_TOKEN + "\n")
    async with InProcessNeuron.start(config, token=NEURON_TOKEN) as neuron:
        await neuron.load(TINY_MODEL_ID, model_dir)
        gateway_config = write_configs(
            directory,
            f"""
            [gateway]
            api_keys = ["{GATEWAY_KEY}"]
            max_body_mb = {MAX_BODY_MB}
            header_timeout = {HEADER_TIMEOUT_S}
            body_timeout = {BODY_TIMEOUT_S}
            [[neurons]]
            name = "a"
            endpoint = "{neuron.url}"
            token_file = "{token_file}"
            """,
            f"""
            [[models]]
            id = "{TINY_MODEL_ID}"
            path = "{model_dir}"
            vram_mb = 64
            """,
        )
        async with run_gateway(gateway_config) as gateway:
            yield Stack(neuron, gateway)


class ThreadedStack:
    """`keyed_stack` on its own event loop in a thread, for synchronous tests (hypothesis
    runs sync tests only; a server on the test's own thread would deadlock them)."""

    def __init__(self, directory: Path, model_dir: Path) -> None:
        self.directory = directory
        self.model_dir = model_dir
        self.stack: Stack | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="reliability-stack", daemon=True)

    def __enter__(self) -> Stack:
        self._thread.start()
        self._ready.wait(120)
        if self._error is not None:
            raise self._error
        assert self.stack is not None, "the stack did not start within 120 s"
        return self.stack

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with keyed_stack(self.directory, self.model_dir) as stack:
                self.stack = stack
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._ready.set()
