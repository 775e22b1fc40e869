"""Per-row sampling: greedy, stop suppression, seeded generators, top-k / top-p."""

from __future__ import annotations

import torch

from helexa.neuron.engine.sampling import RowSampler, next_tokens
from helexa.neuron.engine.spec import SamplingParams

LOGITS = torch.tensor([[0.0, 3.0, 1.0, 2.0], [5.0, 0.0, 0.0, 4.0]])


def sampler(**fields: object) -> RowSampler:
    return RowSampler.create(SamplingParams(max_new_tokens=8, **fields))  # type: ignore[arg-type]


def test_greedy_rows_take_the_argmax() -> None:
    rows = [sampler(temperature=0), sampler(temperature=0)]

    assert next_tokens(LOGITS, rows)[1] == [1, 0]


def test_stop_ids_are_suppressed_until_min_new_tokens() -> None:
    held = sampler(temperature=0, min_new_tokens=2, stop_token_ids=frozenset({1}))
    free = sampler(temperature=0, stop_token_ids=frozenset({0}))

    assert next_tokens(LOGITS, [held, free])[1] == [3, 0]
    held.generated = 2
    assert next_tokens(LOGITS, [held, free])[1] == [1, 0]


def test_a_seed_fixes_the_draws_whatever_the_neighbours() -> None:
    def draws(rows: list[RowSampler]) -> list[int]:
        return [next_tokens(LOGITS, rows)[1][0] for _ in range(20)]

    alone = draws([sampler(seed=5), sampler(temperature=0)])
    with_a_sampling_neighbour = draws([sampler(seed=5), sampler(seed=99)])
    other_seed = draws([sampler(seed=6), sampler(temperature=0)])

    assert alone == with_a_sampling_neighbour
    assert alone != other_seed


def test_top_k_and_top_p_restrict_the_candidates() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    top_k = sampler(seed=1, top_k=2)
    top_p = sampler(seed=1, top_p=0.7)  # 0.5 + 0.3 reaches 0.7: tokens 0 and 1 only

    k_draws = {next_tokens(logits, [top_k])[1][0] for _ in range(200)}
    p_draws = {next_tokens(logits, [top_p])[1][0] for _ in range(200)}

    assert k_draws == {0, 1}
    assert p_draws == {0, 1}


def test_unseeded_samplers_still_sample() -> None:
    row = sampler(temperature=1.0)

    assert 0 <= next_tokens(LOGITS[:1], [row])[1][0] < 4
    assert row.generator is not None


def test_greedy_rows_with_stop_ids_held_back_match_masking_before_the_argmax() -> None:
    # The engine takes the argmax first and re-chooses only rows that picked a held-back
    # stop id; that must equal masking the stop ids first, ties included.
    generator = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 4, (64, 12), generator=generator).float()  # many ties
    stops = frozenset({0, 5})
    logits[::3, 5] = 10.0  # a stop id is the clear argmax of every third row
    rows = [sampler(temperature=0, min_new_tokens=1, stop_token_ids=stops) for _ in range(64)]

    chosen, ids = next_tokens(logits, rows)

    expected = logits.clone()
    expected[:, sorted(stops)] = float("-inf")
    assert ids == expected.argmax(dim=-1).tolist()
    assert chosen.tolist() == ids


def test_create_touches_no_device_and_the_first_step_prepares_on_the_logits_device() -> None:
    row = sampler(seed=3, stop_token_ids=frozenset({2}))
    assert (row.generator, row.stop_index) == (None, None)  # nothing made on the event loop

    next_tokens(LOGITS, [row, sampler(temperature=0)])

    assert row.stop_index is not None and row.stop_index.device == LOGITS.device
    assert row.generator is not None and row.generator.device == LOGITS.device


def test_min_p_drops_tokens_below_its_share_of_the_top() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    row = sampler(seed=1, min_p=0.5)  # keeps p >= 0.25: tokens 0 and 1

    assert {next_tokens(logits, [row])[1][0] for _ in range(200)} == {0, 1}


def test_repetition_penalty_steers_away_from_prompt_and_generated_ids() -> None:
    logits = torch.tensor([[4.0, 3.0, -1.0, 2.5], [4.0, 3.0, -1.0, 2.5]])
    penalized = RowSampler.create(
        SamplingParams(max_new_tokens=8, temperature=0, repetition_penalty=2.0), [0]
    )
    plain = sampler(temperature=0)

    # 4/2 = 2 < 3: the prompt's id 0 loses to 1; then 0 (2) and 1 (1.5) lose to 3 (2.5).
    assert next_tokens(logits, [penalized, plain])[1] == [1, 0]
    assert next_tokens(logits, [penalized, plain])[1] == [3, 0]
    assert penalized.seen == {0, 1, 3}
