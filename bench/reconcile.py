"""Reconcile at fleet scale: `plan` time and save -> first load call, 500 neurons x 100 models.

The neurons are in-process fakes (this benchmark only): they keep a FleetState
current and answer load/unload instantly, so what is measured is the
reconciler itself: reading both files, snapshotting and fingerprinting the
fleet, diffing with placement, and the watch -> debounce -> round path.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from helexa.config import ModelSpec, NeuronEntry, load_config
from helexa.fleet.state import DeviceSnapshot, FleetState, ObservedNeuron
from helexa.protocol.neuron import LoadRequest, ModelInfo, ModelsList
from helexa.reconcile.daemon import ReconcileDaemon
from helexa.reconcile.desired import load_desired
from helexa.reconcile.diff import diff
from helexa.reconcile.observed import observe
from helexa.reconcile.simulate import simulate_load, simulate_unload

NEURONS = 500
MODELS = 100
PINNED_EVERY = 2  # every 2nd model is pinned, replicas 1-3
DEVICE_MB = 24_000


class FakeNeurons:
    """Poller + neuron client in one: calls change the FleetState directly."""

    def __init__(self, fleet: FleetState) -> None:
        self.fleet = fleet
        self.load_calls: list[tuple[float, str]] = []
        self.listeners: list[Callable[[ObservedNeuron], None]] = []

    async def poll_once(self) -> None:
        return None  # the state is always current

    async def poll_neuron(self, name: str) -> ObservedNeuron:
        return self.fleet.neurons[name]

    async def load(self, neuron: NeuronEntry, request: LoadRequest) -> ModelInfo:
        self.load_calls.append((time.monotonic(), request.model))
        spec = ModelSpec(id=request.model, pin=True, vram_mb=1000)
        loc = simulate_load(self.fleet, neuron.name, spec, 1000)
        loc.state = "loaded"
        return ModelInfo(id=request.model, state="loaded", memory_mb=1000)

    async def unload(
        self, neuron: NeuronEntry, model: str, drain_timeout_s: float | None = None
    ) -> ModelsList:
        simulate_unload(self.fleet, neuron.name, model)
        return ModelsList(models=[])


def fleet_toml(neurons: int) -> str:
    lines = ['[reconcile]\ninterval = "10m"\n']
    for i in range(neurons):
        lines.append(f'[[neurons]]\nname = "n{i:03d}"\nendpoint = "http://127.0.0.1:1/n{i:03d}"\n')
    return "\n".join(lines)


def models_toml(models: int, extra: str = "") -> str:
    lines = []
    for i in range(models):
        pinned = i % PINNED_EVERY == 0
        replicas = 1 + i % 3 if pinned else 1
        lines.append(
            f'[[models]]\nid = "org/model-{i:03d}"\nvram_mb = {1000 + 10 * i}\n'
            f"pin = {'true' if pinned else 'false'}\nreplicas = {replicas}\npriority = {i % 5}\n"
        )
    return "\n".join(lines) + extra


def empty_fleet(neurons: int) -> FleetState:
    fleet = FleetState()
    for i in range(neurons):
        neuron = fleet.add_neuron(f"n{i:03d}", f"http://127.0.0.1:1/n{i:03d}")
        neuron.healthy = True
        neuron.devices = [
            DeviceSnapshot(d, "RTX 4090", "cuda", DEVICE_MB, DEVICE_MB) for d in range(2)
        ]
    return fleet


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms (max {max(samples) * 1000:.1f})"


async def measure_plan(directory: Path, repeat: int) -> dict[str, str]:
    (directory / "fleet.toml").write_text(fleet_toml(NEURONS))
    (directory / "models.toml").write_text(models_toml(MODELS))
    read, cold, converged = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        config = load_config(directory / "fleet.toml", directory / "models.toml")
        desired = load_desired(config)
        read.append(time.perf_counter() - started)
    fleet = empty_fleet(NEURONS)
    for _ in range(repeat):
        started = time.perf_counter()
        plan = diff(desired, observe(fleet))
        cold.append(time.perf_counter() - started)
    actions = len(plan.actions)
    # Converge the fleet as apply would, then plan again: nothing to do.
    fakes = FakeNeurons(fleet)
    for action in plan.actions:
        await fakes.load(desired.neurons[action.neuron], LoadRequest(model=action.model))
    for _ in range(repeat):
        started = time.perf_counter()
        again = diff(desired, observe(fleet))
        converged.append(time.perf_counter() - started)
    assert not again.actions, again.actions[:3]
    return {
        "read + validate both files": _ms(read),
        f"plan, empty fleet ({actions} loads)": _ms(cold),
        "plan, converged fleet (no changes)": _ms(converged),
    }


async def measure_save_to_load(directory: Path, repeat: int) -> list[float]:
    config = load_config(directory / "fleet.toml", directory / "models.toml")
    fleet = empty_fleet(NEURONS)
    fakes = FakeNeurons(fleet)
    daemon = ReconcileDaemon(
        directory / "fleet.toml", directory / "models.toml", fleet, fakes, fakes, config=config
    )
    task = asyncio.create_task(daemon.run())
    latencies: list[float] = []
    try:
        await _until(lambda: _converged(daemon), 120)
        for n in range(repeat):
            model = f"org/new-{n}"
            extra = f'\n[[models]]\nid = "{model}"\nvram_mb = 1000\npin = true\n'
            temporary = directory / ".models.toml.swp"
            temporary.write_text(models_toml(MODELS, extra))
            saved_at = time.monotonic()
            temporary.replace(directory / "models.toml")
            await _until(_was_called(fakes, model), 60)
            called_at = _called(fakes, model) or 0.0
            latencies.append(called_at - saved_at)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return latencies


def _converged(daemon: ReconcileDaemon) -> bool:
    converged = daemon.conditions.get("Converged")
    return converged is not None and converged.status


def _called(fakes: FakeNeurons, model: str) -> float | None:
    return next((at for at, name in fakes.load_calls if name == model), None)


def _was_called(fakes: FakeNeurons, model: str) -> Callable[[], bool]:
    return lambda: _called(fakes, model) is not None


async def _until(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.005)


async def run(quick: bool) -> str:
    repeat = 3 if quick else 10
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        plan_times = await measure_plan(directory, repeat)
        latencies = await measure_save_to_load(directory, repeat)
    lines = [
        "## reconcile",
        "",
        f"Simulated fleet: {NEURONS} neurons x 2 devices of {DEVICE_MB} MB, {MODELS} models "
        f"in models.toml ({MODELS // PINNED_EVERY} pinned, replicas 1-3). Neurons are in-process "
        f"fakes; {repeat} repetitions, median (max).",
        "",
        "| measurement | time |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in plan_times.items()),
        f"| save of models.toml -> first load call (daemon: watch, debounce, re-read, diff) "
        f"| {_ms(latencies)} |",
        "",
    ]
    return "\n".join(lines)
