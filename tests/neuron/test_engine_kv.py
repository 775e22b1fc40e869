"""GrowingLayer: appends land in place, and the states equal what torch.cat would give."""

from __future__ import annotations

import torch

from helexa.neuron.engine.kv import MIN_SPARE, GrowingLayer


def states(length: int, seed: int) -> torch.Tensor:
    return torch.randn((2, 3, length, 4), generator=torch.Generator().manual_seed(seed))


def test_appends_write_into_the_same_buffer_and_match_cat() -> None:
    layer = GrowingLayer()
    first_k, first_v = states(5, 1), states(5, 2)
    keys, _ = layer.update(first_k, first_v)
    buffer = keys.data_ptr()
    appended_k, appended_v = [first_k], [first_v]

    for step in range(MIN_SPARE):  # 5 + 64 positions fit the first allocation's room
        new_k, new_v = states(1, 10 + step), states(1, 100 + step)
        appended_k.append(new_k)
        appended_v.append(new_v)
        keys, values = layer.update(new_k, new_v)
        assert keys.data_ptr() == buffer

    torch.testing.assert_close(keys, torch.cat(appended_k, dim=-2))
    torch.testing.assert_close(values, torch.cat(appended_v, dim=-2))
    assert layer.get_seq_length() == 5 + MIN_SPARE


def test_outgrowing_the_buffer_reallocates_and_keeps_the_states() -> None:
    layer = GrowingLayer()
    layer.update(states(3, 1), states(3, 2))
    big_k, big_v = states(200, 3), states(200, 4)

    keys, values = layer.update(big_k, big_v)

    assert keys.shape[-2] == 203
    torch.testing.assert_close(keys[:, :, 3:, :], big_k)
    torch.testing.assert_close(values[:, :, :3, :], states(3, 2))


def test_set_states_replaces_everything() -> None:
    layer = GrowingLayer()
    layer.update(states(10, 1), states(10, 2))

    layer.set_states(states(4, 5), states(4, 6))

    assert layer.get_seq_length() == 4
    torch.testing.assert_close(layer.keys, states(4, 5))
