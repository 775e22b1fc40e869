"""Out of memory is recognised in every form it arrives in, and nothing else is."""

from __future__ import annotations

import pytest
import torch

from helexa.neuron.engine.oom import is_out_of_memory


def wrapped(inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise ValueError("converting the checkpoint failed") from exc
    except ValueError as outer:
        return outer


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA error: out of memory"),
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate`"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        ),
        MemoryError(),
        wrapped(torch.OutOfMemoryError("CUDA out of memory")),
    ],
)
def test_allocation_failures_are_out_of_memory(error: BaseException) -> None:
    assert is_out_of_memory(error)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("shape mismatch"),
        TypeError("out of memory"),  # only allocation errors' own types count
        wrapped(KeyError("lm_head.weight")),
    ],
)
def test_other_failures_are_not(error: BaseException) -> None:
    assert not is_out_of_memory(error)
