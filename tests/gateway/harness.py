"""A real gateway over real neurons on loopback, for the gateway's end-to-end tests."""

from __future__ import annotations

import contextlib
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx
import openai

from helexa.config import Config, load_config
from helexa.fleet.poller import PollSettings
from helexa.gateway.app import build_app
from helexa.gateway.core import Gateway
from helexa.gateway.limits import gateway_protocol
from helexa.neuron.config import NeuronConfig
from helexa.testing.neuron_proc import serve_in_process


@dataclass
class RunningGateway:
    gateway: Gateway
    url: str

    def openai(self, api_key: str = "unused") -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=60
        )

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=60)

    def decisions(self, kind: str) -> list[str]:
        return [d.model for d in self.gateway.fleet.decisions if d.kind == kind]


def write_configs(directory: Path, fleet_toml: str, models_toml: str) -> Config:
    (directory / "fleet.toml").write_text(textwrap.dedent(fleet_toml))
    (directory / "models.toml").write_text(textwrap.dedent(models_toml))
    return load_config(directory / "fleet.toml", directory / "models.toml")


@contextlib.asynccontextmanager
async def run_gateway(
    config: Config, *, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[RunningGateway]:
    """`helexa serve`'s gateway in-process, polling fast so tests wait little.

    `clock` is the monotonic clock of the keys' limits (tests pass a minute by hand).
    """
    gateway = Gateway(
        config,
        poll=PollSettings(interval=0.2, timeout=2.0, failure_threshold=2),
        keep_alive_interval=0.05,
        clock=clock,
    )
    async with serve_in_process(build_app(gateway), http=gateway_protocol(config)) as url:
        yield RunningGateway(gateway, url)


def neuron_config(name: str, max_memory_mb: int = 0) -> NeuronConfig:
    return NeuronConfig.model_validate(
        {
            "neuron": {"name": name, "offline": True, "max_in_flight": 4},
            "devices": {"reserve_mb": 0, "max_memory_mb": max_memory_mb},
        }
    )


def anthropic_prompt_tokens(usage: anthropic.types.Usage) -> int:
    """The whole prompt an Anthropic usage counts: its `input_tokens` are only the part
    no prefix cache served (count_tokens counts the whole)."""
    cached = (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)
    return usage.input_tokens + cached
