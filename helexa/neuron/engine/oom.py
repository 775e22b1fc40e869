"""Recognising out-of-memory, whatever shape it arrives in, and handing memory back.

torch raises `torch.cuda.OutOfMemoryError` for a failed CUDA allocation, but
the same event can arrive as a plain RuntimeError (cuBLAS failing to allocate
its workspace, transformers re-raising from its weight conversion, CPU
allocations) or as the cause of another exception. Callers map it to 507 at
load time and to a retryable 503 during generation, never to a 500.
"""

from __future__ import annotations

import gc

import torch

_MESSAGES = ("out of memory", "cublas_status_alloc_failed", "can't allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True when `exc` or anything in its cause/context chain is an allocation failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, torch.cuda.OutOfMemoryError):
            return True
        if isinstance(current, MemoryError):
            return True
        if isinstance(current, RuntimeError) and any(m in str(current).lower() for m in _MESSAGES):
            return True
        current = current.__cause__ or current.__context__
    return False


def free_cached_memory() -> None:
    """Collect garbage and give torch's cached CUDA blocks back to the driver."""
    gc.collect()
    if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        torch.cuda.empty_cache()
