"""The reconcile daemon against real neurons: saves, broken saves, restarts, lock, backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from helexa.config import load_config
from helexa.fleet.neuron_client import NeuronClient
from helexa.fleet.poller import FleetPoller, PollSettings
from helexa.fleet.state import FleetState
from helexa.reconcile.backoff import Backoff
from helexa.reconcile.daemon import ReconcileDaemon
from helexa.reconcile.lock import WriterLock, lock_path_for
from helexa.reconcile.plan import Action
from helexa.reconcile.report import ProgressEvent
from helexa.testing.neuron_proc import NeuronProcess, eventually
from tests.reconcile.live import (
    ConfigFiles,
    fleet_toml,
    in_process_neurons,
    loaded,
    model_toml,
    write_config,
)
from tests.reconcile.test_apply import NEURON_TOML


class Recorder:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def starts(self, model: str) -> list[ProgressEvent]:
        return [
            e
            for e in self.events
            if e.phase == "start" and isinstance(e.action, Action) and e.action.model == model
        ]


@contextlib.asynccontextmanager
async def running_daemon(
    files: ConfigFiles, recorder: Recorder, backoff: Backoff | None = None
) -> AsyncIterator[ReconcileDaemon]:
    """The daemon as `helexa serve` would run it, sharing one FleetState and poller."""
    config = load_config(files.fleet, files.models)
    fleet = FleetState()
    poller = FleetPoller(
        fleet, config.fleet.neurons, PollSettings(timeout=2.0, failure_threshold=1)
    )
    client = NeuronClient()
    daemon = ReconcileDaemon(
        files.fleet,
        files.models,
        fleet,
        poller,
        client,
        config=config,
        on_config=lambda new: poller.set_entries(new.fleet.neurons),
        progress=recorder,
        debounce_s=0.05,
        backoff=backoff,
    )
    async with poller, contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(client.close)
        task = asyncio.create_task(daemon.run())
        try:
            await eventually(lambda: daemon.rounds >= 1, within_s=30)
            yield daemon
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def save_by_rename(path: Path, text: str) -> None:
    """What editors do: write a temporary file beside it, then rename it over."""
    temporary = path.with_name(f".{path.name}.swp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


async def next_round(daemon: ReconcileDaemon) -> None:
    # A round already running may have read the state before our change: wait past it.
    seen = daemon.rounds + (1 if daemon.in_round else 0)
    daemon.trigger()
    await eventually(lambda: daemon.rounds > seen, within_s=30)


def condition(daemon: ReconcileDaemon, kind: str) -> tuple[bool, str, str]:
    found = daemon.conditions.get(kind)  # type: ignore[arg-type]
    assert found is not None, kind
    return found.status, found.reason, found.message


async def test_a_saved_pinned_model_is_loaded_without_any_command(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    recorder = Recorder()
    async with in_process_neurons("a") as neurons:
        # A long interval: only the file watch can explain a load within the deadline.
        files = write_config(
            tmp_path,
            fleet_toml({"a": neurons["a"].url}, interval="10m"),
            [model_toml("tiny/one", tiny_model_dir)],
        )
        async with running_daemon(files, recorder) as daemon:
            await eventually(lambda: loaded(neurons["a"]) == {"tiny/one"}, within_s=30)
            saved_at = time.monotonic()
            save_by_rename(
                files.models,
                model_toml("tiny/one", tiny_model_dir) + model_toml("tiny/two", tiny_model_dir),
            )
            await eventually(lambda: bool(recorder.starts("tiny/two")), within_s=10)
            latency = recorder.starts("tiny/two")[0].at - saved_at
            print(f"save -> load call: {latency * 1000:.0f} ms")
            assert 0 < latency < 5
            await eventually(lambda: loaded(neurons["a"]) == {"tiny/one", "tiny/two"}, 30)
            await next_round(daemon)
            assert condition(daemon, "Converged")[:2] == (True, "Converged")
            assert condition(daemon, "ConfigValid")[0] is True
            assert daemon.to_json()["pending"] == []


async def test_a_broken_save_changes_nothing_and_names_the_line(
    tmp_path: Path, tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="helexa.reconcile.daemon")
    recorder = Recorder()
    async with in_process_neurons("a") as neurons:
        files = write_config(
            tmp_path,
            fleet_toml({"a": neurons["a"].url}, interval="10m"),
            [model_toml("tiny/one", tiny_model_dir)],
        )
        async with running_daemon(files, recorder) as daemon:
            await eventually(lambda: loaded(neurons["a"]) == {"tiny/one"}, within_s=30)
            # Drops tiny/one *and* breaks line 3: applying it would unload tiny/one.
            save_by_rename(files.models, '[[models]]\nid = "tiny/two"\npin = tru\n')
            await eventually(lambda: condition(daemon, "ConfigValid")[0] is False, 10)
            _, reason, message = condition(daemon, "ConfigValid")
            assert reason == "Invalid"
            assert f"{files.models}:3" in message
            assert f"{files.models}:3" in daemon.to_json()["config_error"]

            await next_round(daemon)
            assert loaded(neurons["a"]) == {"tiny/one"}
            assert [e.action.kind for e in recorder.events if e.phase == "start"] == ["load"]
            assert condition(daemon, "Converged")[0] is True  # against the last good state

            save_by_rename(files.models, model_toml("tiny/one", tiny_model_dir))
            await eventually(lambda: condition(daemon, "ConfigValid")[0] is True, 10)
            assert any("config valid again" in r.getMessage() for r in caplog.records)


async def test_a_restarted_neuron_gets_its_pinned_model_back_within_one_interval(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    recorder = Recorder()
    neuron_toml = tmp_path / "neuron.toml"
    neuron_toml.write_text(NEURON_TOML)
    b = NeuronProcess(neuron_toml)
    interval = 1.0
    async with b:
        files = write_config(
            tmp_path,
            fleet_toml({"b": b.url}, interval="1s"),
            [model_toml("tiny/one", tiny_model_dir)],
        )
        async with running_daemon(files, recorder) as daemon:
            await eventually(lambda: len(recorder.starts("tiny/one")) == 1, within_s=30)
            await eventually(lambda: condition(daemon, "Converged")[0] is True, within_s=30)
            await b.__aexit__(None, None, None)
            await eventually(lambda: condition(daemon, "NeuronsReachable")[0] is False, 10)
            async with NeuronProcess(neuron_toml, port=b.port):
                back_at = time.monotonic()
                await eventually(lambda: len(recorder.starts("tiny/one")) == 2, within_s=30)
                reload_after = recorder.starts("tiny/one")[1].at - back_at
                print(f"neuron back -> load call: {reload_after * 1000:.0f} ms")
                assert reload_after < interval + 1.0
                async with httpx.AsyncClient(base_url=b.url) as http:

                    async def held() -> list[str]:
                        body = (await http.get("/models")).json()
                        return [m["id"] for m in body["models"] if m["state"] == "loaded"]

                    deadline = time.monotonic() + 30
                    while await held() != ["tiny/one"] and time.monotonic() < deadline:
                        await next_round(daemon)
                    assert await held() == ["tiny/one"]


async def test_a_neuron_coming_up_is_reconciled_at_once_not_at_the_next_interval(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    recorder = Recorder()
    neuron_toml = tmp_path / "neuron.toml"
    neuron_toml.write_text(NEURON_TOML)
    late = NeuronProcess(neuron_toml)  # not started yet: its port is free
    files = write_config(
        tmp_path,
        fleet_toml({"b": late.url}, interval="10m"),
        [model_toml("tiny/one", tiny_model_dir)],
    )
    async with running_daemon(files, recorder) as daemon:
        assert condition(daemon, "NeuronsReachable")[0] is False
        assert condition(daemon, "Converged")[1] == "PlanErrors"
        async with late:
            up_at = time.monotonic()
            poller = daemon.poller
            while not recorder.starts("tiny/one") and time.monotonic() - up_at < 30:
                await poller.poll_once()  # the gateway's poller loop, by hand
            assert recorder.starts("tiny/one")
            assert recorder.starts("tiny/one")[0].at - up_at < 30


async def test_auto_apply_off_plans_but_applies_nothing(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    recorder = Recorder()
    async with in_process_neurons("a") as neurons:
        files = write_config(
            tmp_path,
            fleet_toml({"a": neurons["a"].url}, auto="off"),
            [model_toml("tiny/one", tiny_model_dir)],
        )
        async with running_daemon(files, recorder) as daemon:
            assert condition(daemon, "Converged")[:2] == (False, "ActionsPending")
            assert [a["model"] for a in daemon.to_json()["pending"]] == ["tiny/one"]
            assert recorder.events == [] and loaded(neurons["a"]) == set()


async def test_a_failing_load_backs_off_instead_of_retrying_every_round(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    recorder = Recorder()
    async with in_process_neurons("a") as neurons:
        files = write_config(
            tmp_path,
            fleet_toml({"a": neurons["a"].url}),
            [model_toml("tiny/broken", tmp_path / "no-such-model")],
        )
        async with running_daemon(files, recorder, Backoff(base_s=60)) as daemon:
            await eventually(lambda: any(e.phase == "failed" for e in recorder.events), 30)
            for _ in range(3):
                await next_round(daemon)
            assert len(recorder.starts("tiny/broken")) == 1
            [entry] = daemon.to_json()["backoff"]
            assert entry["action"] == ["load", "a", "tiny/broken"] and entry["failures"] == 1
            assert [a["model"] for a in daemon.to_json()["pending"]] == ["tiny/broken"]
            assert condition(daemon, "Converged")[1] == "ActionsPending"


async def test_the_daemon_waits_while_an_apply_holds_the_lock(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    recorder = Recorder()
    async with in_process_neurons("a") as neurons:
        files = write_config(
            tmp_path, fleet_toml({"a": neurons["a"].url}), [model_toml("tiny/one", tiny_model_dir)]
        )
        with WriterLock(lock_path_for(files.models), "apply"):
            async with running_daemon(files, recorder) as daemon:
                status, reason, message = condition(daemon, "Converged")
                assert (status, reason) == (False, "LockHeld")
                assert f"apply (pid {os.getpid()}" in message
                assert loaded(neurons["a"]) == set()
        async with running_daemon(files, recorder):
            await eventually(lambda: loaded(neurons["a"]) == {"tiny/one"}, within_s=30)


async def test_fleet_changes_take_effect_and_listen_changes_ask_for_a_restart(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    recorder = Recorder()
    async with in_process_neurons("a", "b") as neurons:
        files = write_config(
            tmp_path,
            fleet_toml({"a": neurons["a"].url}, interval="10m"),
            [model_toml("tiny/one", tiny_model_dir, replicas=2)],
        )
        async with running_daemon(files, recorder) as daemon:
            assert condition(daemon, "Converged")[1] == "PlanErrors"  # one neuron, two replicas
            both = fleet_toml({"a": neurons["a"].url, "b": neurons["b"].url}, interval="10m")
            save_by_rename(files.fleet, both)
            await eventually(lambda: loaded(neurons["b"]) == {"tiny/one"}, within_s=30)
            assert daemon.restart_required is None

            save_by_rename(
                files.fleet, both.replace("[gateway]", '[gateway]\nlisten = "127.0.0.1:1"')
            )
            await eventually(
                lambda: condition(daemon, "ConfigValid")[1] == "RestartRequired", within_s=10
            )
            assert "restart `helexa serve`" in condition(daemon, "ConfigValid")[2]


async def test_the_daemon_stops_when_a_kick_and_the_cancel_coincide(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    files = write_config(tmp_path, fleet_toml({}), [model_toml("tiny/one", tiny_model_dir)])
    config = load_config(files.fleet, files.models)
    fleet = FleetState()
    async with FleetPoller(fleet, []) as poller:
        daemon = ReconcileDaemon(
            files.fleet, files.models, fleet, poller, NeuronClient(), config=config
        )
        for _ in range(5):
            task = asyncio.create_task(daemon.run())
            await eventually(lambda: daemon.rounds >= 1 and not daemon.in_round, within_s=30)
            daemon.trigger()
            task.cancel()
            await asyncio.wait({task}, timeout=10)  # never hangs the test itself
            assert task.cancelled(), "the cancel was lost: the daemon kept running"
            daemon.rounds = 0
