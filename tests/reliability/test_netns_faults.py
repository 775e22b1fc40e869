"""Faults on a fleet of three hosts in network namespaces (helexa.testing.netns).

n1 and n2 hold the tiny model, n3 holds nothing; the gateway has its own host.
Each test leaves the fleet as it found it (healed, resumed, restarted); the pinned
copy on a killed neuron comes back by the reconcile daemon alone.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from helexa.testing.netns import available
from helexa.testing.neuron_proc import TINY_MODEL_ID
from tests.reliability.figures import record
from tests.reliability.netfleet import NetFleet, net_fleet

DEBOUNCE_BUDGET_S = 15.0  # poll timeout x unhealthy_after, with room for a loaded 2-core box
FAULTS: dict[str, int] = {}
TIMINGS: dict[str, float] = {}  # worst seen, seconds


@pytest.fixture(scope="module")
def fleet(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetFleet]:
    # Never skipped: where namespaces cannot be made (not root), this says why and fails.
    unavailable = available()
    assert unavailable is None, f"the network-namespace fleet cannot run here: {unavailable}"
    with net_fleet(tmp_path_factory.mktemp("netns"), tiny_model_dir) as running:
        yield running
    record("netns_faults", faults_injected=dict(FAULTS), worst_seconds=dict(TIMINGS))


def worst(name: str, seconds: float) -> None:
    TIMINGS[name] = round(max(seconds, TIMINGS.get(name, 0.0)), 2)


async def eventually(fleet: NetFleet, check: Callable[[], bool], within_s: float) -> float:
    """Seconds until `check` (run inside the gateway's namespace) held."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if await fleet.call(check):
            return time.monotonic() - started
        await fleet.call(lambda: time.sleep(0.1))
    raise AssertionError(f"condition not met within {within_s:g}s")


def chat(fleet: NetFleet, max_tokens: int = 4) -> tuple[int, float]:
    body = {
        "model": TINY_MODEL_ID,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hi"}],
    }
    started = time.monotonic()
    response = httpx.post(f"{fleet.gateway.url}/v1/chat/completions", json=body, timeout=60)
    return response.status_code, time.monotonic() - started


def last_used(fleet: NetFleet, name: str) -> float | None:
    used: float | None = fleet.neuron_models(name)[TINY_MODEL_ID]["last_used_at"]
    return used


async def test_partitioned_neuron_is_routed_around_and_returns(fleet: NetFleet) -> None:
    assert await fleet.call(fleet.holders) == {"n1", "n2"}
    used_before = await fleet.call(lambda: last_used(fleet, "n2"))
    fleet.net.partition("n2")
    FAULTS["partition"] = FAULTS.get("partition", 0) + 1
    try:
        marked = await eventually(fleet, lambda: not fleet.healthy()["n2"], DEBOUNCE_BUDGET_S)
        worst("partition_marked_down", marked)
        for _ in range(6):
            status, seconds = await fleet.call(lambda: chat(fleet))
            worst("request_while_partitioned", seconds)
            assert status == 200 and seconds < 10
    finally:
        fleet.net.heal("n2")
    assert await fleet.call(lambda: last_used(fleet, "n2")) == used_before, "routed while down"
    back = await eventually(fleet, lambda: fleet.holders() == {"n1", "n2"}, DEBOUNCE_BUDGET_S)
    worst("back_after_heal", back)


async def test_hung_neuron_does_not_slow_polls_or_routing(fleet: NetFleet) -> None:
    """A neuron that accepts connections but never answers (SIGSTOP): the others are
    polled on time and serve at normal speed once it is marked down."""
    hung = fleet.neurons["n1"]
    os.kill(hung.pid, signal.SIGSTOP)
    FAULTS["hang"] = FAULTS.get("hang", 0) + 1
    try:
        polled = await fleet.call(
            lambda: {n["name"]: n["last_poll_at"] for n in fleet.fleet()["neurons"]}
        )
        await fleet.call(lambda: time.sleep(2.0))
        again = await fleet.call(
            lambda: {n["name"]: n["last_poll_at"] for n in fleet.fleet()["neurons"]}
        )
        for name in ("n2", "n3"):
            assert again[name] > polled[name], f"{name} was not polled while n1 hung"
        await eventually(fleet, lambda: not fleet.healthy()["n1"], DEBOUNCE_BUDGET_S)
        for _ in range(4):
            status, seconds = await fleet.call(lambda: chat(fleet))
            assert status == 200 and seconds < 5
    finally:
        os.kill(hung.pid, signal.SIGCONT)
    await eventually(fleet, lambda: fleet.holders() == {"n1", "n2"}, DEBOUNCE_BUDGET_S)


async def test_gateway_restart_relearns_without_reloading(fleet: NetFleet) -> None:
    before = await fleet.call(
        lambda: {n: fleet.neuron_models(n)[TINY_MODEL_ID]["loaded_at"] for n in ("n1", "n2")}
    )
    await fleet.call(fleet.restart_gateway)
    FAULTS["gateway_restart"] = FAULTS.get("gateway_restart", 0) + 1
    await eventually(fleet, lambda: fleet.holders() == {"n1", "n2"}, DEBOUNCE_BUDGET_S)
    after = await fleet.call(
        lambda: {n: fleet.neuron_models(n)[TINY_MODEL_ID]["loaded_at"] for n in ("n1", "n2")}
    )
    assert after == before, "a model was reloaded"
    assert "n3" not in await fleet.call(fleet.holders)
    status, _ = await fleet.call(lambda: chat(fleet))
    assert status == 200


STREAMS = {
    "openai": ("/v1/chat/completions", b'data: {"error"'),
    "anthropic": ("/v1/messages", b"event: error"),
}


def long_stream(fleet: NetFleet, path: str, started: threading.Event) -> tuple[bytes, float]:
    body = {
        "model": TINY_MODEL_ID,
        "max_tokens": 3000,
        "messages": [{"role": "user", "content": "talk"}],
        "stream": True,
        "min_tokens": 3000,
        "ignore_eos": True,
    }
    received = b""
    with httpx.stream("POST", f"{fleet.gateway.url}{path}", json=body, timeout=30) as response:
        for chunk in response.iter_bytes():
            received += chunk
            if received.count(b"data:") >= 8:
                started.set()
    return received, time.monotonic()


@pytest.mark.parametrize("dialect", sorted(STREAMS))
async def test_neuron_killed_mid_stream(fleet: NetFleet, dialect: str) -> None:
    path, error_marker = STREAMS[dialect]
    started = threading.Event()
    stream = fleet.client_threads.submit(long_stream, fleet, path, started)
    assert await fleet.call(lambda: started.wait(30)), "the stream never started"
    in_flight = await fleet.call(
        lambda: [n for n in ("n1", "n2") if fleet.neuron_models(n)[TINY_MODEL_ID]["in_flight"]]
    )
    assert len(in_flight) == 1
    victim = in_flight[0]
    killed_at = time.monotonic()  # before kill(): it returns only once the process is reaped
    fleet.neurons[victim].kill()
    FAULTS["sigkill_mid_stream"] = FAULTS.get("sigkill_mid_stream", 0) + 1
    received, ended_at = await fleet.call(lambda: stream.result(30))
    worst("error_event_after_sigkill", ended_at - killed_at)
    assert ended_at - killed_at < 5.0, f"the client waited {ended_at - killed_at:.1f}s"
    assert error_marker in received, received[-300:]
    for _ in range(4):  # the next requests go to the surviving replica
        status, seconds = await fleet.call(lambda: chat(fleet))
        assert status == 200 and seconds < 10
    await fleet.call(lambda: fleet.restart_neuron(victim))
    # Nobody loads it by hand: the reconcile daemon restores the pinned copy.
    restored = await eventually(fleet, lambda: fleet.holders() == {"n1", "n2"}, 60)
    worst("pinned_copy_restored", restored)
