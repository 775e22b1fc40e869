"""The owner thread of one loaded model: every forward pass runs here.

The async side talks to it through a thread-safe inbox (submit, cancel,
stop); tokens go back through generation.post (one wake-up per step and
event loop).

Each loop iteration: read the inbox (blocking only when idle), drop
cancelled generations, take newcomers, prefill within the iteration's token
budget and merge the finished prefills in, then run one decode step for the
whole batch.

A newcomer goes one of two ways. A short prompt with nothing cached is
prefilled with the other such newcomers as one small batch (prefill.py).
A prompt that starts with a cached prefix (prefix_cache.py), or that is
longer than this iteration's chunk, gets its own one-row cache (a copy of the
cached prefix, or empty) and the rest of its prompt is prefilled onto it in
chunks (prefill.extend), at most one chunk of prompt tokens per iteration in
all, between the decode steps of the running batch: a long prompt no longer
stalls every running stream for its whole prefill. The chunk is
`prefill_chunk_tokens`: "auto" sizes it by measured time so it costs about one
decode step (chunk_size.py; no limit while nothing runs), a count fixes it, 0
puts the rest in one pass. One pass is at most PREFILL_MAX_TOKENS. When the last chunk is
in, its token is sampled and the row joins the batch. The KV of a prompt
goes into the prefix cache when it joins the batch (requests arriving while
it runs find it), that of a finished generation (prompt and the generated
tokens fed back) when it ends.

Generations submitted during one event-loop tick (a burst of requests) reach
the inbox as one message, so they are prefilled together: posted one by one,
the owner thread could wake on the first and prefill it alone (measured: 1 + 7
in up to half of the bench's 8-stream runs), costing an extra prefill, a
merge and a step whose batch is one row short.

Nothing that goes wrong inside an iteration may end the thread: a failed
prefill fails its newcomers, a failed step or a failed merge / row drop (each
copies the whole KV cache, so CUDA out-of-memory can strike there too) fails
the running batch, and the thread goes on serving the next request. Out of
memory reaches the caller as a retryable 503, anything else as a 500.

Models whose cache has layers other than full attention (sliding window,
linear attention) cannot share the padded batch: they are served one
generation at a time, the others waiting in the inbox's queue, without
prefix cache or chunks (their states are not plain rows to copy or extend).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import torch

from helexa.errors import APIError, GenerationFailed, ModelUnloading, Overloaded
from helexa.neuron.engine.batch import (
    DecodeBatch,
    decode_step,
    keep_rows,
    merge,
    row_states,
)
from helexa.neuron.engine.chunk_size import ChunkTimer
from helexa.neuron.engine.constraint import advance, mask_logits
from helexa.neuron.engine.generation import END, Delivery, Generation, Posts, post
from helexa.neuron.engine.kv import batchable, cache_with_states, growing_cache
from helexa.neuron.engine.oom import free_cached_memory, is_out_of_memory
from helexa.neuron.engine.prefill import extend, prefill
from helexa.neuron.engine.prefix_cache import BLOCK_TOKENS, PrefixCache
from helexa.neuron.engine.sampling import next_tokens
from helexa.neuron.engine.spec import PrefillChunk

log = logging.getLogger("helexa.neuron.engine")

PREFILL_MAX_TOKENS = 16384  # prompt tokens prefilled in one batched pass (the first always goes)
DEFAULT_PREFILL_CHUNK_TOKENS: PrefillChunk = "auto"
CHUNK_SPARE = 64  # positions of room a one-row cache gets past its prompt


@dataclass(frozen=True)
class _Cancel:
    seq_id: int


class _Stop:
    pass


_Message = list[Generation] | _Cancel | _Stop


class EngineWorker:
    """Runs the batched decode loop of one model on its own thread."""

    def __init__(
        self,
        model: Any,
        device: torch.device,
        max_positions: int,
        *,
        name: str,
        max_batch_size: int = 32,
        prefix_cache_bytes: int = 0,
        prefill_chunk_tokens: PrefillChunk = DEFAULT_PREFILL_CHUNK_TOKENS,
    ) -> None:
        self._model = model
        self._device = device
        self._max_positions = max_positions
        # Sliding-window / linear-attention caches cannot be padded, merged, copied or
        # extended by rows: one at a time, no prefix cache, no chunks.
        plain = batchable(model.config)
        self._max_batch_size = max_batch_size if plain else 1
        self.prefix_cache = (
            PrefixCache(prefix_cache_bytes) if plain and prefix_cache_bytes else None
        )
        # "auto": sized per iteration from measured costs (timer); else a fixed count.
        self._auto = plain and prefill_chunk_tokens == "auto"
        fixed = prefill_chunk_tokens if isinstance(prefill_chunk_tokens, int) else 0
        self._chunk_tokens = fixed if plain else 0
        self.timer = ChunkTimer()
        self._inbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._running: list[Generation] = []  # rows of _batch, in order
        self._waiting: list[Generation] = []  # not taken yet (no room)
        self._fresh: list[Generation] = []  # taken, to prefill in a batch
        self._prefilling: list[Generation] = []  # taken, prefilled onto their own row
        self._batch: DecodeBatch | None = None
        self._stopping = False
        self._submit_lock = threading.Lock()  # no submit may slip in behind the stop message
        # Per event loop: generations submitted this tick, handed over by _flush next tick.
        self._pending: dict[asyncio.AbstractEventLoop, list[Generation]] = {}
        self.active = 0  # generations admitted and not finished; written by the thread only
        self._thread = threading.Thread(target=self._run, name=f"engine:{name}", daemon=True)
        self._thread.start()

    def submit(self, generation: Generation) -> None:
        """Queue a generation; call from its event loop (it is handed over on the next tick)."""
        with self._submit_lock:
            if self._stopping:
                raise ModelUnloading("the model is being unloaded")
            if not self._thread.is_alive():  # died (see _run): nothing would read the inbox
                raise GenerationFailed("the model's engine thread has stopped")
            pending = self._pending.get(generation.loop)
            if pending is None:
                pending = self._pending[generation.loop] = []
                generation.loop.call_soon(self._flush, generation.loop)
            pending.append(generation)

    def cancel(self, generation: Generation) -> None:
        with self._submit_lock:
            pending = self._pending.get(generation.loop, [])
            if generation in pending:  # not handed over yet: the thread never sees it
                pending.remove(generation)
                return
        self._inbox.put(_Cancel(generation.seq_id))

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._submit_lock:
            pending = self._pending.pop(loop, [])
            if pending and not self._stopping:
                self._inbox.put(pending)
                return
        for generation in pending:  # stopped since they were submitted
            generation.outbox.put_nowait(ModelUnloading("the model was unloaded"))

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to finish its current step and exit; waits for it."""
        with self._submit_lock:
            self._stopping = True
            self._inbox.put(_Stop())
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._model = None  # the last reference the thread held
            if self.prefix_cache is not None:
                self.prefix_cache.clear()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _queued(self) -> list[Generation]:
        return self._waiting + self._fresh + self._prefilling

    def _run(self) -> None:
        unloaded: BaseException = ModelUnloading("the model was unloaded")
        try:
            with torch.inference_mode():
                while self._iterate():
                    self.active = len(self._running) + len(self._queued())
        except BaseException as exc:  # the thread ends (logged here): no stream may hang on it
            log.exception("engine thread died")
            unloaded = _generation_failed(exc)
        finally:
            self._fail(self._running + self._queued(), unloaded)
            self._running, self._waiting, self._batch = [], [], None
            self._fresh, self._prefilling = [], []
            self.active = 0

    def _iterate(self) -> bool:
        """One pass of the loop; False once asked to stop."""
        try:
            if not self._read_inbox():
                return False
            self._admit()
            if self._batch is not None:
                self._step()
            return True
        except Exception as exc:  # merge / row drop / delivery: fail the batch, keep the thread
            log.exception("batch bookkeeping failed")
            failure = _generation_failed(exc)
        # Outside the except block: its traceback no longer pins the tensors of the failed step.
        self._fail(self._running, failure)
        self._running, self._batch = [], None
        free_cached_memory()
        return True

    def _read_inbox(self) -> bool:
        """Apply pending messages; False once asked to stop."""
        idle = not self._running and not self._queued()
        messages = [self._inbox.get()] if idle else []
        while True:
            try:
                messages.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        cancelled = set()
        for message in messages:
            if isinstance(message, _Stop):
                return False
            if isinstance(message, _Cancel):
                cancelled.add(message.seq_id)
            else:
                self._waiting += message
        if cancelled:
            self._waiting = [g for g in self._waiting if g.seq_id not in cancelled]
            self._fresh = [g for g in self._fresh if g.seq_id not in cancelled]
            self._prefilling = [g for g in self._prefilling if g.seq_id not in cancelled]
            self._retain(lambda g: g.seq_id not in cancelled)
        return True

    def _admit(self) -> None:
        """Take newcomers, then prefill within this iteration's token budget: rows
        prefilled in chunks first (they were taken earlier), then a batch of fresh ones."""
        budget = self._chunk_budget()
        self._take_newcomers(budget)
        used = self._advance_chunks(budget)
        joining = self._next_fresh(None if budget is None else budget - used, used > 0)
        if joining:
            self._prefill_fresh(joining)

    def _chunk_budget(self) -> int | None:
        """Prompt tokens this iteration may prefill; None = no cap."""
        if self._auto:
            return self.timer.tokens(running=self._batch is not None)
        return self._chunk_tokens or None

    def _take_newcomers(self, budget: int | None) -> None:
        room = self._max_batch_size - len(self._running) - len(self._fresh) - len(self._prefilling)
        taken, self._waiting = self._waiting[: max(0, room)], self._waiting[max(0, room) :]
        for generation in taken:
            if not self._start_own_row(generation, budget):
                self._fresh.append(generation)

    def _start_own_row(self, generation: Generation, budget: int | None) -> bool:
        """Give `generation` its own one-row cache when it has a cached prefix or a prompt
        longer than this iteration's chunk; False leaves it to the batched prefill."""
        prompt = generation.prompt_ids
        match = self.prefix_cache.lookup(prompt) if self.prefix_cache is not None else None
        long = budget is not None and budget < len(prompt)
        if match is None and not long:
            return False
        room = len(prompt) + CHUNK_SPARE
        try:
            if match is not None:
                cache = cache_with_states(self._model.config, match.states, room)
            else:
                cache = growing_cache(self._model.config)
        except Exception as exc:  # e.g. out of memory copying the prefix: fails it alone
            log.exception("starting a prefill failed")
            self._fail([generation], _generation_failed(exc))
            return True
        start = match.length if match is not None else 0
        positions = torch.tensor([start], device=self._device)
        generation.partial = DecodeBatch(cache, None, positions, torch.zeros_like(positions))
        generation.prefilled = generation.cached_tokens = start
        self._prefilling.append(generation)
        return True

    def _advance_chunks(self, budget: int | None) -> int:
        """Prefill the own-row generations in order, up to `budget` tokens; returns those used."""
        used = 0
        while self._prefilling and (budget is None or used < budget):
            generation = self._prefilling[0]
            assert generation.partial is not None
            prompt, done = generation.prompt_ids, generation.prefilled
            count = min(len(prompt) - done, PREFILL_MAX_TOKENS)
            if budget is not None:
                count = min(count, budget - used)
            failure: APIError | None = None
            try:
                started = perf_counter()
                logits = extend(self._model, generation.partial, prompt[done : done + count], done)
                if self._auto:
                    _settle(logits)  # a GPU runs it asynchronously: time the work, not the launch
                    self.timer.record_chunk(perf_counter() - started, count)
                generation.prefilled += count
                if generation.prefilled == len(prompt):
                    mask_logits(logits, [generation])
                    chosen, ids = next_tokens(logits, [generation.sampler])
            except Exception as exc:  # fails this generation only
                log.exception("prefill failed")
                failure = _generation_failed(exc)
            used += count
            if failure is not None:
                self._prefilling.pop(0)
                generation.partial = None
                self._fail([generation], failure)
                free_cached_memory()
                continue
            if generation.prefilled < len(prompt):
                continue
            self._prefilling.pop(0)
            row, generation.partial = generation.partial, None
            row.last_tokens = chosen[:, None]
            self._join([generation], row, ids)
        return used

    def _next_fresh(self, budget: int | None, prefilled: bool) -> list[Generation]:
        """Fresh generations up to the budget and PREFILL_MAX_TOKENS; the first goes
        alone past them when nothing else was prefilled this iteration."""
        cap = PREFILL_MAX_TOKENS if budget is None else min(budget, PREFILL_MAX_TOKENS)
        count, tokens = 0, 0
        for generation in self._fresh:
            tokens += len(generation.prompt_ids)
            if tokens > cap and (count or prefilled):
                break
            count += 1
        joining, self._fresh = self._fresh[:count], self._fresh[count:]
        return joining

    def _prefill_fresh(self, joining: list[Generation]) -> None:
        failure: APIError | None = None
        try:
            newcomers, logits = prefill(self._model, [g.prompt_ids for g in joining], self._device)
            mask_logits(logits, joining)
            chosen, ids = next_tokens(logits, [g.sampler for g in joining])
        except Exception as exc:  # fails the newcomers only; the running batch goes on
            log.exception("prefill failed")
            failure = _generation_failed(exc)
        if failure is not None:
            self._fail(joining, failure)
            free_cached_memory()
            return
        newcomers.last_tokens = chosen[:, None]
        self._join(joining, newcomers, ids)

    def _join(self, joining: list[Generation], newcomers: DecodeBatch, ids: list[int]) -> None:
        self._running.extend(joining)  # from here a failure fails them with the batch
        self._batch = newcomers if self._batch is None else merge(self._batch, newcomers)
        self._remember_prompts(joining)
        self._deliver_and_retire(joining, ids)

    def _remember_prompts(self, joining: list[Generation]) -> None:
        """Put the prompts' KV into the prefix cache as they start decoding, so requests
        arriving while they run (the same system prompt) find it; the entry of the whole
        sequence replaces it when it finishes."""
        if self.prefix_cache is None or self._batch is None:
            return
        first = len(self._running) - len(joining)  # the joining rows are the last ones
        for row, generation in enumerate(joining, start=first):
            prompt = generation.prompt_ids
            if len(prompt) - generation.cached_tokens >= BLOCK_TOKENS:  # something new
                self.prefix_cache.insert(prompt, row_states(self._batch, row, len(prompt)))

    def _step(self) -> None:
        assert self._batch is not None
        failure: APIError | None = None
        try:
            started = perf_counter()
            logits = decode_step(self._model, self._batch)
            mask_logits(logits, self._running)
            chosen, ids = next_tokens(logits, [g.sampler for g in self._running])
            self.timer.record_step(perf_counter() - started)  # ids are on the host: done
        except Exception as exc:  # the batch's cache is now suspect: fail it, keep the thread
            log.exception("decode step failed")
            failure = _generation_failed(exc)
        if failure is not None:
            self._fail(self._running, failure)
            self._running, self._batch = [], None
            free_cached_memory()
            return
        self._batch.last_tokens = chosen[:, None]
        self._deliver_and_retire(self._running, ids)

    def _deliver_and_retire(self, generations: list[Generation], tokens: list[int]) -> None:
        """Hand each generation its token; drop the generations that ended from the batch."""
        advance(generations, tokens)
        posts: Posts = defaultdict(list)
        finished: list[Generation] = []
        for generation, token in zip(generations, tokens, strict=True):
            sampler = generation.sampler
            if token in sampler.params.stop_token_ids:
                posts[generation.loop].append((generation, END))
                finished.append(generation)
                continue
            sampler.generated += 1
            generation.generated_ids.append(token)
            posts[generation.loop].append((generation, token))
            if (
                sampler.generated >= sampler.params.max_new_tokens
                or generation.length >= self._max_positions
            ):
                posts[generation.loop].append((generation, END))
                finished.append(generation)
        if finished:  # before the END goes out: a next turn sent right after finds it
            self._remember(finished)
        gone = post(posts)
        ended = {g.seq_id for g in finished}
        if ended or gone:
            self._retain(lambda g: g.seq_id not in ended and g.loop not in gone)

    def _remember(self, finished: list[Generation]) -> None:
        """Put the KV of finished generations into the prefix cache."""
        if self.prefix_cache is None or self._batch is None:
            return
        rows = {g.seq_id: i for i, g in enumerate(self._running)}
        fed = self._batch.positions.tolist()  # each row's positions in the cache
        for generation in finished:
            row = rows[generation.seq_id]
            tokens = (generation.prompt_ids + generation.generated_ids)[: fed[row]]
            self.prefix_cache.insert(tokens, row_states(self._batch, row, len(tokens)))

    def _retain(self, keep: Callable[[Generation], bool]) -> None:
        rows = [i for i, g in enumerate(self._running) if keep(g)]
        if len(rows) == len(self._running):
            return
        self._running = [self._running[i] for i in rows]
        if not rows:
            self._batch = None
        elif self._batch is not None:
            self._batch = keep_rows(self._batch, rows)

    @staticmethod
    def _fail(generations: list[Generation], error: BaseException) -> None:
        posts: dict[asyncio.AbstractEventLoop, list[tuple[Generation, Delivery]]]
        posts = defaultdict(list)
        for generation in generations:
            posts[generation.loop].append((generation, error))
        post(posts)


def _settle(logits: torch.Tensor) -> None:
    """Wait for the pass that produced `logits` (one element copied to the host)."""
    if logits.device.type != "cpu":
        logits[0, 0].item()


def _generation_failed(exc: BaseException) -> APIError:
    if is_out_of_memory(exc):
        return Overloaded(
            "out of memory on the model's device; retry shortly or with a shorter request",
            code="out_of_memory",
        )
    return GenerationFailed(f"generation failed: {type(exc).__name__}: {exc}")
