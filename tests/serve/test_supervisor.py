"""Local neurons as supervised children: restart with backoff, clean stop, generated config."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from helexa.config import load_toml
from helexa.neuron.config import NeuronConfig
from helexa.serve.supervisor import (
    Backoff,
    ChildSpec,
    Supervisor,
    listen_of,
    local_neuron_spec,
)
from tests.gateway.harness import write_configs

FAST = Backoff(initial=0.05, maximum=0.2, reset_after=60)


def sleeper(ignore_term: bool = False, ready: Path | None = None) -> ChildSpec:
    code = "import pathlib, signal, sys, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "pathlib.Path(sys.argv[1]).touch()\ntime.sleep(60)\n"
    return ChildSpec(
        "sleeper", [sys.executable, "-c", code, str(ready or os.devnull)], stop_grace=0.5
    )


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_dead_child_is_restarted_and_stop_ends_it() -> None:
    supervisor = Supervisor(sleeper(), FAST)
    runner = asyncio.create_task(supervisor.run())
    await asyncio.wait_for(supervisor.wait_started(1), 10)
    first = supervisor.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await asyncio.wait_for(supervisor.wait_started(2), 10)
    second = supervisor.pid
    assert second is not None and second != first
    await supervisor.stop()
    await asyncio.wait_for(runner, 10)
    assert supervisor.process is not None and supervisor.process.returncode == -signal.SIGTERM


async def test_a_child_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    supervisor = Supervisor(sleeper(ignore_term=True, ready=ready), FAST)
    runner = asyncio.create_task(supervisor.run())
    await until(ready.exists)  # its SIGTERM handler is in place
    started = time.monotonic()
    await supervisor.stop()
    await asyncio.wait_for(runner, 10)
    assert supervisor.process is not None and supervisor.process.returncode == -signal.SIGKILL
    assert time.monotonic() - started >= 0.5


async def test_restart_replaces_the_child_at_once() -> None:
    supervisor = Supervisor(sleeper(), Backoff(initial=30, maximum=30))
    runner = asyncio.create_task(supervisor.run())
    await asyncio.wait_for(supervisor.wait_started(1), 10)
    first = supervisor.pid
    await supervisor.restart()
    await asyncio.wait_for(supervisor.wait_started(2), 5)  # no 30 s backoff
    assert supervisor.pid not in (None, first)
    await supervisor.stop()
    await asyncio.wait_for(runner, 10)


def test_generated_neuron_toml_preloads_pinned_models(tmp_path: Path, tiny_model_dir: Path) -> None:
    fleet = """
        [[neurons]]
        name = "local"
        endpoint = "http://127.0.0.1:14141"
        local = true
        token_file = "fleet.token"
        [[neurons]]
        name = "other"
        endpoint = "http://127.0.0.1:14142"
    """
    models = textwrap.dedent(f"""
        [[models]]
        id = "pinned/here"
        path = "{tiny_model_dir}"
        pin = true
        [models.sampling]
        temperature = 0.5
        [[models]]
        id = "pinned/elsewhere"
        pin = true
        neurons = ["other"]
        [[models]]
        id = "not/pinned"
    """)
    config = write_configs(tmp_path, fleet, models)
    entry = config.fleet.neurons[0]
    runtime = tmp_path / "run"
    runtime.mkdir()
    spec = local_neuron_spec(entry, config, runtime)
    assert spec.argv[-2:] == ["--listen", "127.0.0.1:14141"]
    generated = load_toml(Path(spec.argv[spec.argv.index("--config") + 1]), NeuronConfig)
    assert generated.neuron.name == "local"
    assert generated.neuron.token_file == tmp_path / "fleet.token"
    assert [p.model for p in generated.preload] == ["pinned/here"]
    assert generated.preload[0].path == tiny_model_dir
    assert generated.preload[0].sampling == {"temperature": 0.5}
    assert listen_of(config.fleet.neurons[1]) == "127.0.0.1:14142"
