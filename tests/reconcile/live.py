"""Real neurons on loopback and config files pointing at them, for the end-to-end tests."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from helexa.neuron.config import NeuronConfig
from helexa.testing.neuron_proc import InProcessNeuron


@dataclass(frozen=True)
class ConfigFiles:
    fleet: Path
    models: Path

    @property
    def flags(self) -> list[str]:
        return ["--fleet", str(self.fleet), "--models", str(self.models)]


def neuron_config(name: str) -> NeuronConfig:
    return NeuronConfig.model_validate(
        {
            "neuron": {"name": name, "offline": True, "max_in_flight": 2},
            "devices": {"reserve_mb": 0},
        }
    )


@contextlib.asynccontextmanager
async def in_process_neurons(*names: str) -> AsyncIterator[dict[str, InProcessNeuron]]:
    async with contextlib.AsyncExitStack() as stack:
        neurons = {}
        for name in names:
            neurons[name] = await stack.enter_async_context(
                InProcessNeuron.start(neuron_config(name))
            )
        yield neurons


def fleet_toml(endpoints: Mapping[str, str], *, interval: str = "30s", auto: str = "models") -> str:
    lines = [
        "[gateway]",
        'connect_timeout = "2s"',
        "[reconcile]",
        f'interval = "{interval}"',
        f'auto_apply = "{auto}"',
    ]
    for name, url in endpoints.items():
        lines += ["[[neurons]]", f'name = "{name}"', f'endpoint = "{url}"']
    return "\n".join(lines) + "\n"


def model_toml(model_id: str, path: Path, *, pin: bool = True, **extra: str | int) -> str:
    """One [[models]] entry for the tiny model under `model_id` (ids can share a directory)."""
    lines = [
        "[[models]]",
        f'id = "{model_id}"',
        f'path = "{path}"',
        'dtype = "float32"',
        "vram_mb = 64",
        f"pin = {'true' if pin else 'false'}",
    ]
    for key, value in extra.items():
        lines.append(f"{key} = {value!r}" if isinstance(value, int) else f"{key} = {value}")
    return "\n".join(lines) + "\n"


def write_config(directory: Path, fleet: str, models: Sequence[str]) -> ConfigFiles:
    files = ConfigFiles(directory / "fleet.toml", directory / "models.toml")
    files.fleet.write_text(textwrap.dedent(fleet), encoding="utf-8")
    files.models.write_text("\n".join(models), encoding="utf-8")
    return files


def loaded(neuron: InProcessNeuron) -> set[str]:
    """Ids the neuron holds in state "loaded" (read straight from its registry)."""
    return {info.id for info in neuron.state.registry.infos() if info.state == "loaded"}
