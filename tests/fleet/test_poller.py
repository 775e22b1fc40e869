"""The poller against real HTTP servers on loopback speaking the neuron API shapes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from helexa.config.fleet import NeuronEntry
from helexa.fleet.poller import FleetPoller, PollSettings
from helexa.fleet.state import FleetState, ObservedNeuron
from helexa.protocol.neuron import Device, Discovery, EngineInfo, ModelInfo, ModelsList


class FakeNeuron:
    """A loopback HTTP server answering /discovery, /models and /v1/models like a neuron.

    Tests flip `status`, `hang` and `models` between polls; every Authorization
    header it receives is kept in `auth`.
    """

    def __init__(self, name: str, token: str | None = None) -> None:
        self.name = name
        self.token = token
        self.status = 200
        self.hang = False  # hold every request open until stop()
        self.free_mb = 20000
        self.models: list[ModelInfo] = []
        self.cycles = 0
        self.auth: list[str | None] = []
        self.url = ""
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> FakeNeuron:
        app = web.Application()
        app.router.add_get("/discovery", self._guarded(self._discovery))
        app.router.add_get("/models", self._guarded(self._models))
        app.router.add_get("/v1/models", self._guarded(self._openai_models))
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def entry(self, **fields: Any) -> NeuronEntry:
        return NeuronEntry.model_validate({"name": self.name, "endpoint": self.url, **fields})

    def _guarded(
        self, handler: Callable[[], web.Response]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def guarded(request: web.Request) -> web.Response:
            self.auth.append(request.headers.get("Authorization"))
            if self.hang:
                await self._release.wait()
            if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
                return web.json_response({"error": {"message": "bad token"}}, status=401)
            if self.status != 200:
                return web.json_response({"error": {"message": "boom"}}, status=self.status)
            return handler()

        return guarded

    def _discovery(self) -> web.Response:
        discovery = Discovery(
            hostname=f"{self.name}.host",
            version="0.1.0",
            engine=EngineInfo(torch="2.13.0"),
            devices=[
                Device(
                    index=0,
                    name="Fake 4090",
                    kind="cuda",
                    memory_total_mb=24000,
                    memory_free_mb=self.free_mb,
                )
            ],
        )
        return web.json_response(discovery.model_dump(mode="json"))

    def _models(self) -> web.Response:
        listing = ModelsList(models=self.models, cycles=self.cycles)
        return web.json_response(listing.model_dump(mode="json"))

    def _openai_models(self) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "served-upstream"}]})


@pytest.fixture
async def neurons() -> AsyncIterator[Callable[..., Awaitable[FakeNeuron]]]:
    started: list[FakeNeuron] = []

    async def start(name: str, token: str | None = None) -> FakeNeuron:
        neuron = await FakeNeuron(name, token).start()
        started.append(neuron)
        return neuron

    yield start
    for neuron in started:
        await neuron.stop()


def qwen(memory_mb: int = 4321, **fields: Any) -> ModelInfo:
    return ModelInfo(
        id="qwen", state="loaded", memory_mb=memory_mb, dtype="bfloat16", max_in_flight=4, **fields
    )


NeuronFactory = Callable[..., Awaitable[FakeNeuron]]


async def test_poll_once_fills_devices_models_and_memory_history(neurons: NeuronFactory) -> None:
    fake = await neurons("a")
    fake.models, fake.cycles, fake.free_mb = [qwen(in_flight=2)], 7, 15000
    fleet = FleetState()
    async with FleetPoller(fleet, [fake.entry()]) as poller:
        await poller.poll_once()
        neuron = fleet.neurons["a"]
        assert neuron.healthy and neuron.last_error is None and neuron.last_poll_at is not None
        assert (neuron.hostname, neuron.version, neuron.cycles) == ("a.host", "0.1.0", 7)
        assert neuron.free_memory_mb == 15000 and neuron.total_memory_mb == 24000
        assert neuron.models["qwen"].in_flight == 2 and neuron.models["qwen"].busy_score == 0.5
        # The measured footprint outlives the unload.
        fake.models = []
        await poller.poll_once()
    assert neuron.models == {}
    assert fleet.measured_memory_mb("qwen", "bfloat16") == 4321


async def test_slow_neurons_do_not_delay_the_others(neurons: NeuronFactory) -> None:
    fast = [await neurons(f"fast{i}") for i in range(3)]
    slow = [await neurons(f"slow{i}") for i in range(2)]
    for fake in fast:
        fake.models = [qwen()]
    for fake in slow:
        fake.hang = True
    fleet = FleetState()
    poller = FleetPoller(fleet, [f.entry() for f in fast + slow], PollSettings(timeout=0.5))
    updated_after: dict[str, float] = {}
    started = time.monotonic()

    def record_update(neuron: ObservedNeuron) -> None:
        updated_after.setdefault(neuron.name, time.monotonic() - started)

    poller.listeners.append(record_update)
    async with poller:
        await poller.poll_once()
    elapsed = time.monotonic() - started
    # Two hung neurons polled one after the other would take >= 1 s.
    assert 0.5 <= elapsed < 0.9
    for fake in fast:
        assert fleet.neurons[fake.name].healthy and "qwen" in fleet.neurons[fake.name].models
        assert updated_after[fake.name] < 0.4
    for fake in slow:
        assert fleet.neurons[fake.name].last_error == "no answer within 0.5s"


async def test_health_is_debounced(neurons: NeuronFactory) -> None:
    fake = await neurons("a")
    fake.models = [qwen()]
    fleet = FleetState()
    async with FleetPoller(fleet, [fake.entry()], PollSettings(failure_threshold=3)) as poller:
        neuron = fleet.neurons["a"]
        assert not neuron.healthy  # never polled: unknown counts as down
        await poller.poll_once()
        assert neuron.healthy
        fake.status = 500
        for failures in (1, 2):
            await poller.poll_once()
            assert neuron.healthy and neuron.consecutive_failures == failures
            assert "HTTP 500" in (neuron.last_error or "")
        await poller.poll_once()
        assert not neuron.healthy and neuron.models == {}
        fake.status = 200
        await poller.poll_once()
        assert neuron.healthy and neuron.consecutive_failures == 0 and "qwen" in neuron.models


async def test_waiters_see_a_neuron_go_down_without_sleeping(neurons: NeuronFactory) -> None:
    fake = await neurons("a")
    fleet = FleetState()
    settings = PollSettings(interval=0.05, timeout=0.5, failure_threshold=2)
    async with FleetPoller(fleet, [fake.entry()], settings) as poller:
        neuron = fleet.neurons["a"]
        loop = asyncio.create_task(poller.run())
        try:
            assert await poller.changes.wait_for(lambda: neuron.healthy, within=5)
            fake.status = 503
            assert await poller.changes.wait_for(lambda: not neuron.healthy, within=5)
            assert neuron.consecutive_failures >= 2
        finally:
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop
    assert not await poller.changes.wait_for(lambda: neuron.healthy, within=0.05)


async def test_token_file_is_sent_as_bearer(neurons: NeuronFactory, tmp_path: Path) -> None:
    fake = await neurons("a", token="s3cret")
    token_file = tmp_path / "fleet.token"
    token_file.write_text("s3cret\n")
    fleet = FleetState()
    async with FleetPoller(fleet, [fake.entry(token_file=str(token_file))]) as poller:
        await poller.poll_once()
    assert fleet.neurons["a"].healthy
    assert fake.auth == ["Bearer s3cret", "Bearer s3cret"]


async def test_wrong_or_missing_token_fails_the_poll(
    neurons: NeuronFactory, tmp_path: Path
) -> None:
    fake = await neurons("a", token="s3cret")
    wrong = tmp_path / "wrong.token"
    wrong.write_text("guess")
    entries = [fake.entry(token_file=str(wrong))]
    fleet = FleetState()
    async with FleetPoller(fleet, entries, PollSettings(failure_threshold=1)) as poller:
        await poller.poll_once()
        assert "HTTP 401" in (fleet.neurons["a"].last_error or "")
        poller.set_entries([fake.entry(token_file=str(tmp_path / "missing.token"))])
        await poller.poll_once()
    assert "cannot read token_file" in (fleet.neurons["a"].last_error or "")
    assert not fleet.neurons["a"].healthy


async def test_openai_kind_is_checked_via_models_and_carries_its_static_list(
    neurons: NeuronFactory, tmp_path: Path
) -> None:
    fake = await neurons("big", token="k")
    (tmp_path / "t").write_text("k")
    entry = NeuronEntry.model_validate(
        {
            "name": "big",
            "kind": "openai",
            "endpoint": fake.url + "/v1",
            "models": ["vendor/big", "vendor/small"],
            "token_file": str(tmp_path / "t"),
        }
    )
    fleet = FleetState()
    async with FleetPoller(fleet, [entry], PollSettings(failure_threshold=1)) as poller:
        await poller.poll_once()
        neuron = fleet.neurons["big"]
        assert neuron.healthy and not neuron.managed and fake.auth == ["Bearer k"]
        assert sorted(neuron.models) == ["vendor/big", "vendor/small"]
        assert all(loc.state == "loaded" for loc in neuron.models.values())
        # In-flight counts for foreign servers are the gateway's own; a poll keeps them.
        neuron.models["vendor/big"].in_flight = 3
        await poller.poll_once()
        assert neuron.models["vendor/big"].in_flight == 3
        fake.status = 502
        await poller.poll_once()
    assert not neuron.healthy and neuron.models == {}


async def test_a_fleet_rebuilt_by_polling_equals_the_old_one(neurons: NeuronFactory) -> None:
    a, b = await neurons("a"), await neurons("b")
    a.models = [qwen(), ModelInfo(id="other", state="loading")]
    b.cycles = 3
    entries = [a.entry(), b.entry()]
    old = FleetState()
    async with FleetPoller(old, entries) as poller:
        await poller.poll_once()
    fresh = FleetState()
    sessions: list[aiohttp.ClientSession] = []

    def session_factory() -> aiohttp.ClientSession:
        sessions.append(aiohttp.ClientSession())
        return sessions[-1]

    async with FleetPoller(fresh, entries, session_factory=session_factory) as poller:
        await poller.poll_once()
        await poller.poll_once()
    assert len(sessions) == 1 and sessions[0].closed
    assert fresh == old and fresh.to_json()["neurons"][0]["models"]
    assert fresh.neurons["a"] == old.neurons["a"] and fresh.neurons["a"] is not old.neurons["a"]


async def test_set_entries_follows_fleet_toml(neurons: NeuronFactory) -> None:
    a, b = await neurons("a"), await neurons("b")
    fleet = FleetState()
    async with FleetPoller(fleet, [a.entry()]) as poller:
        await poller.poll_once()
        known: ObservedNeuron = fleet.neurons["a"]
        poller.set_entries([a.entry(), b.entry()])
        assert fleet.neurons["a"] is known and not fleet.neurons["b"].healthy
        await poller.poll_once()
        assert fleet.neurons["b"].healthy
        poller.set_entries([b.entry()])
    assert list(fleet.neurons) == ["b"]


async def test_a_failing_listener_does_not_stop_updates_or_waiters(
    neurons: NeuronFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await neurons("a")
    fleet = FleetState()

    def broken(_: ObservedNeuron) -> None:
        raise RuntimeError("metrics bug")

    async with FleetPoller(fleet, [fake.entry()]) as poller:
        poller.listeners.append(broken)
        waiter = asyncio.create_task(
            poller.changes.wait_for(lambda: fleet.neurons["a"].healthy, within=5)
        )
        await poller.poll_once()
        assert await waiter
    assert "poll listener" in caplog.text
