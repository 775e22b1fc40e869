"""Sizing prefill chunks by measured time: the pure chooser and the moving averages."""

from __future__ import annotations

import pytest

from helexa.neuron.engine.chunk_size import (
    CHUNK_BUDGET,
    CHUNK_CAP,
    CHUNK_FLOOR,
    STEP_WINDOW,
    ChunkTimer,
    chunk_tokens,
)


def test_a_chunk_costs_the_budget_in_decode_steps() -> None:
    # 40 ms steps, 0.5 ms per prompt token: budget x 40 / 0.5 tokens.
    assert chunk_tokens(0.040, 0.0005, running=True) == int(CHUNK_BUDGET * 80)
    assert chunk_tokens(0.040, 0.0005, running=True, budget=1.0) == 80


def test_faster_hardware_gets_larger_chunks() -> None:
    slow = chunk_tokens(0.050, 0.001, running=True)
    fast = chunk_tokens(0.010, 0.00002, running=True)
    assert slow is not None and fast is not None and fast > slow


def test_the_floor_keeps_a_long_prompt_advancing() -> None:
    # A token costs more than a step: still CHUNK_FLOOR tokens per iteration.
    assert chunk_tokens(0.010, 0.050, running=True) == CHUNK_FLOOR
    assert chunk_tokens(0.010, 0.050, running=True, floor=4) == 4


def test_the_cap_bounds_a_chunk() -> None:
    assert chunk_tokens(1.0, 1e-7, running=True) == CHUNK_CAP
    assert chunk_tokens(1.0, 1e-7, running=True, cap=300) == 300


def test_with_nothing_running_the_prompt_goes_whole() -> None:
    assert chunk_tokens(0.040, 0.0005, running=False) is None
    assert chunk_tokens(None, None, running=False) is None


@pytest.mark.parametrize(("step", "token"), [(None, 0.001), (0.04, None), (None, None)])
def test_before_both_costs_are_measured_a_chunk_is_the_floor(
    step: float | None, token: float | None
) -> None:
    assert chunk_tokens(step, token, running=True) == CHUNK_FLOOR


def test_the_timer_averages_steps_and_seconds_per_token() -> None:
    timer = ChunkTimer()
    assert timer.tokens(running=True) == CHUNK_FLOOR
    timer.record_step(0.040)
    timer.record_chunk(0.016, 16)  # 1 ms per token
    assert (timer.step_seconds, timer.token_seconds) == (0.040, 0.001)
    assert timer.tokens(running=True) == int(CHUNK_BUDGET * 40)
    timer.record_chunk(0.032, 16)  # seconds per token: halfway to the newest
    assert timer.token_seconds == pytest.approx(0.0015)
    timer.record_chunk(0.0, 0)  # an empty chunk says nothing
    assert timer.token_seconds == pytest.approx(0.0015)


def test_one_stalled_step_does_not_inflate_the_chunks() -> None:
    timer = ChunkTimer()
    for _ in range(STEP_WINDOW):
        timer.record_step(0.001)
    timer.record_chunk(0.0016, 16)
    before = timer.tokens(running=True)
    timer.record_step(0.168)  # the OS or the garbage collector stalled one step
    assert timer.step_seconds == 0.001
    assert timer.tokens(running=True) == before


def test_the_step_cost_follows_a_lasting_change() -> None:
    timer = ChunkTimer()
    for _ in range(STEP_WINDOW):
        timer.record_step(0.010)
    for _ in range(STEP_WINDOW // 2 + 1):  # the batch grew: steps cost more from now on
        timer.record_step(0.030)
    assert timer.step_seconds == 0.030


def test_re_measuring_each_chunk_converges_on_a_chunk_that_costs_the_budget() -> None:
    # A chunk of n tokens costs a + b.n (a fixed per-pass overhead): sizing each chunk by
    # the last seconds per token starts low and settles where a chunk costs the budget.
    step, a, b = 0.040, 0.012, 0.0004
    timer = ChunkTimer()
    timer.record_step(step)
    sizes = []
    for _ in range(30):
        n = timer.tokens(running=True)
        assert n is not None
        sizes.append(n)
        timer.record_chunk(a + b * n, n)
    settled = (CHUNK_BUDGET * step - a) / b  # 50 tokens
    assert sizes[0] == CHUNK_FLOOR
    assert sizes == sorted(sizes)  # grows from below: no chunk overshoots on the way
    assert abs(sizes[-1] - settled) <= 1
    assert all(a + b * n <= CHUNK_BUDGET * step + 1e-9 for n in sizes)
