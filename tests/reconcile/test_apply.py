"""Applier against real neurons: preconditions re-checked, partial failure reported exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

from helexa.config import load_config
from helexa.reconcile.apply import Applier
from helexa.reconcile.oneshot import OneShot
from helexa.reconcile.report import ProgressEvent
from helexa.testing.neuron_proc import NeuronProcess
from tests.reconcile.live import fleet_toml, in_process_neurons, loaded, model_toml, write_config

NEURON_TOML = """\
[neuron]
name = "b"
offline = true
[devices]
reserve_mb = 0
"""


async def test_an_action_already_in_effect_is_skipped(tmp_path: Path, tiny_model_dir: Path) -> None:
    async with in_process_neurons("a") as neurons:
        files = write_config(
            tmp_path, fleet_toml({"a": neurons["a"].url}), [model_toml("tiny/one", tiny_model_dir)]
        )
        async with OneShot(load_config(files.fleet, files.models)) as run:
            plan = await run.plan()
            await neurons["a"].load("tiny/one", tiny_model_dir)  # someone was faster
            report = await Applier(run.desired, run.poller, run.client).apply(plan)
        assert report.ok
        [result] = report.results
        assert result.status == "skipped"
        assert result.message == "tiny/one is already loaded there"
        assert neurons["a"].loader.calls == ["tiny/one"]


async def test_a_neuron_killed_mid_apply_gives_a_partial_report_and_the_plan_shows_the_rest(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    neuron_toml = tmp_path / "neuron.toml"
    neuron_toml.write_text(NEURON_TOML)
    b = NeuronProcess(neuron_toml)
    async with in_process_neurons("a") as neurons, b:
        files = write_config(
            tmp_path,
            fleet_toml({"a": neurons["a"].url, "b": b.url}),
            [
                model_toml("tiny/one", tiny_model_dir, neurons='["a"]'),
                model_toml("tiny/two", tiny_model_dir, neurons='["b"]'),
                model_toml("tiny/three", tiny_model_dir, neurons='["b"]'),
            ],
        )
        config = load_config(files.fleet, files.models)
        events: list[ProgressEvent] = []

        def kill_b_when_it_starts(event: ProgressEvent) -> None:
            events.append(event)
            if event.phase == "start" and event.action.neuron == "b" and b.process is not None:
                b.process.kill()

        async with OneShot(config) as run:
            plan = await run.plan()
            assert [(a.id, a.kind, a.neuron, a.model) for a in plan.actions] == [
                ("a1", "load", "a", "tiny/one"),
                ("a2", "load", "b", "tiny/three"),  # same priority: by id
                ("a3", "load", "b", "tiny/two"),
            ]
            applier = Applier(run.desired, run.poller, run.client, progress=kill_b_when_it_starts)
            report = await applier.apply(plan)

        assert not report.ok
        statuses = {r.action.id: (r.status, r.message) for r in report.results}
        assert statuses["a1"] == ("done", "")
        assert statuses["a2"][0] == "failed" and "b" in statuses["a2"][1]
        assert statuses["a3"] == (
            "not_attempted",
            "an earlier action on b (a2) did not succeed",
        )
        text = report.render()
        assert text.startswith(
            "Apply failed: 1 done, 0 already in place, 1 failed, 1 not attempted."
        )
        assert "Run `helexa plan` to see what remains." in text
        assert [e.phase for e in events if e.action.id == "a3"] == ["not_attempted"]
        assert loaded(neurons["a"]) == {"tiny/one"}

        # b comes back (empty) on the same port: the next plan is exactly the remainder.
        b.stop()
        async with NeuronProcess(neuron_toml, port=b.port), OneShot(config) as run:
            rest = await run.plan()
        assert [(a.kind, a.neuron, a.model) for a in rest.actions] == [
            ("load", "b", "tiny/three"),
            ("load", "b", "tiny/two"),
        ]
        assert rest.errors == ()


class RecordingLock(asyncio.Lock):
    """An asyncio.Lock that tells when someone starts waiting for it."""

    def __init__(self) -> None:
        super().__init__()
        self.wanted = asyncio.Event()

    async def acquire(self) -> Literal[True]:
        self.wanted.set()
        return await super().acquire()


async def test_a_held_neuron_lock_holds_the_action_back(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """The lock the gateway's cold loader takes for one neuron also gates the applier."""
    lock = RecordingLock()
    async with in_process_neurons("a") as neurons:
        files = write_config(
            tmp_path, fleet_toml({"a": neurons["a"].url}), [model_toml("tiny/one", tiny_model_dir)]
        )
        async with OneShot(load_config(files.fleet, files.models)) as run:
            plan = await run.plan()
            applier = Applier(
                run.desired, run.poller, run.client, neuron_locks={"a": lock}.__getitem__
            )
            async with lock:  # a cold load on `a` is in progress
                lock.wanted.clear()
                applying = asyncio.create_task(applier.apply(plan))
                await asyncio.wait_for(lock.wanted.wait(), 10)
                assert not applying.done() and neurons["a"].loader.calls == []
            report = await applying
        assert report.ok and neurons["a"].loader.calls == ["tiny/one"]
