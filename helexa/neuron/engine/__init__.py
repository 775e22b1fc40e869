"""The neuron's inference engine: load a model, stream generated token ids, batched.

    spec.py      LoadSpec, SamplingParams (plain inputs)
    loader.py    load(): find weights, check the memory budget, load, measure
    gguf.py      .gguf files: header -> architecture, quantization, dequantized size; checks
    loaded.py    LoadedModel: stream() / close(), the async face
    worker.py    the owner thread: inbox, admission, chunked prefill, delivery
    generation.py Generation: one request as the owner thread tracks it; token hand-over
    prefix_cache.py KV of earlier sequences found again by token prefix (block hashes, LRU)
    batch.py     the left-padded batch KV cache: step, merge, drop rows
    prefill.py   newcomers' prompts in one forward pass, packed or left-padded
    kv.py        GrowingLayer: cache appends in place instead of torch.cat per token
    threads.py   OpenMP wait policy and CUDA device order, set before torch loads
    placement.py GPUs by UUID, the multi-GPU device map (no CPU/disk offload)
    oom.py       out of memory recognised in any form; cached memory handed back
    sampling.py  per-row greedy / temperature / top-k / top-p with own generators

Contract: docs/architecture.md "neuron engine".
"""

# First, before anything imports torch: sets the OpenMP wait policy (see threads.py).
from helexa.neuron.engine import threads  # noqa: F401  # isort: skip
from helexa.neuron.engine.loaded import LoadedModel
from helexa.neuron.engine.loader import configure_torch_threads, load, weights_bytes
from helexa.neuron.engine.spec import DtypeName, LoadSpec, SamplingParams
from helexa.neuron.hardware import DeviceBudget, MemoryBudget

__all__ = [
    "DeviceBudget",
    "DtypeName",
    "LoadSpec",
    "LoadedModel",
    "MemoryBudget",
    "SamplingParams",
    "configure_torch_threads",
    "load",
    "weights_bytes",
]
