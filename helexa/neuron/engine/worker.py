"""The owner thread of one loaded model: every forward pass runs here.

The async side talks to it through a thread-safe inbox (submit, cancel,
stop). Tokens go back with `loop.call_soon_threadsafe` into one asyncio.Queue
per sequence, batched into one call per step and event loop, so the event
loop never blocks on torch and a busy step costs it one wake-up.

Each loop iteration: read the inbox (blocking only when idle), drop
cancelled sequences, prefill newcomers as one small batch and merge them in,
then run one decode step for the whole batch.

Sequences submitted during one event-loop tick (a burst of requests) reach the
inbox as one message, so they are prefilled together: posted one by one, the
owner thread could wake on the first and prefill it alone (measured: 1 + 7 in
up to half of the bench's 8-stream runs), costing an extra prefill, a merge and
a step whose batch is one row short.

Nothing that goes wrong inside an iteration may end the thread: a failed
prefill fails its newcomers, a failed step or a failed merge / row drop (each
copies the whole KV cache, so CUDA out-of-memory can strike there too) fails
the running batch, and the thread goes on serving the next request. Out of
memory reaches the caller as a retryable 503, anything else as a 500.

Models whose cache has layers other than full attention (sliding window,
linear attention) cannot share the padded batch: they are served one sequence
at a time, the others waiting in the inbox's queue.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from helexa.errors import APIError, GenerationFailed, ModelUnloading, Overloaded
from helexa.neuron.engine.batch import DecodeBatch, decode_step, keep_rows, merge
from helexa.neuron.engine.constraint import RowConstraint, advance, mask_logits
from helexa.neuron.engine.kv import batchable
from helexa.neuron.engine.oom import free_cached_memory, is_out_of_memory
from helexa.neuron.engine.prefill import prefill
from helexa.neuron.engine.sampling import RowSampler, next_tokens

log = logging.getLogger("helexa.neuron.engine")

PREFILL_MAX_TOKENS = 16384  # prompt tokens prefilled in one pass (the first prompt always goes)


class EndOfSequence:
    """Sentinel put on a sequence's queue after its last token."""


END = EndOfSequence()
Delivery = int | EndOfSequence | BaseException


@dataclass(eq=False)
class Sequence:
    """One generation request as the owner thread tracks it."""

    seq_id: int
    prompt_ids: list[int]
    sampler: RowSampler
    loop: asyncio.AbstractEventLoop
    outbox: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)
    constraint: RowConstraint | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        grammar = self.sampler.params.grammar
        if grammar is not None:
            self.constraint = grammar.start()

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + self.sampler.generated


@dataclass(frozen=True)
class _Cancel:
    seq_id: int


class _Stop:
    pass


_Message = list[Sequence] | _Cancel | _Stop


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
    ) -> None:
        self._model = model
        self._device = device
        self._max_positions = max_positions
        # Sliding-window / linear-attention caches cannot be padded and merged: one at a time.
        self._max_batch_size = max_batch_size if batchable(model.config) else 1
        self._inbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._running: list[Sequence] = []
        self._waiting: list[Sequence] = []
        self._batch: DecodeBatch | None = None
        self._stopping = False
        self._submit_lock = threading.Lock()  # no submit may slip in behind the stop message
        # Per event loop: sequences submitted this tick, handed over by _flush next tick.
        self._pending: dict[asyncio.AbstractEventLoop, list[Sequence]] = {}
        self.active = 0  # sequences admitted and not finished; written by the thread only
        self._thread = threading.Thread(target=self._run, name=f"engine:{name}", daemon=True)
        self._thread.start()

    def submit(self, sequence: Sequence) -> None:
        """Queue a sequence; call from its event loop (it is handed over on the next tick)."""
        with self._submit_lock:
            if self._stopping:
                raise ModelUnloading("the model is being unloaded")
            if not self._thread.is_alive():  # died (see _run): nothing would read the inbox
                raise GenerationFailed("the model's engine thread has stopped")
            pending = self._pending.get(sequence.loop)
            if pending is None:
                pending = self._pending[sequence.loop] = []
                sequence.loop.call_soon(self._flush, sequence.loop)
            pending.append(sequence)

    def cancel(self, sequence: Sequence) -> None:
        with self._submit_lock:
            pending = self._pending.get(sequence.loop, [])
            if sequence in pending:  # not handed over yet: the thread never sees it
                pending.remove(sequence)
                return
        self._inbox.put(_Cancel(sequence.seq_id))

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._submit_lock:
            pending = self._pending.pop(loop, [])
            if pending and not self._stopping:
                self._inbox.put(pending)
                return
        for sequence in pending:  # stopped since they were submitted
            sequence.outbox.put_nowait(ModelUnloading("the model was unloaded"))

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to finish its current step and exit; waits for it."""
        with self._submit_lock:
            self._stopping = True
            self._inbox.put(_Stop())
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._model = None  # the last reference the thread held

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        unloaded: BaseException = ModelUnloading("the model was unloaded")
        try:
            with torch.inference_mode():
                while self._iterate():
                    self.active = len(self._running) + len(self._waiting)
        except BaseException as exc:  # the thread ends (logged here): no stream may hang on it
            log.exception("engine thread died")
            unloaded = _generation_failed(exc)
        finally:
            self._fail(self._running + self._waiting, unloaded)
            self._running, self._waiting, self._batch = [], [], None
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
        idle = not self._running and not self._waiting
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
            self._waiting = [s for s in self._waiting if s.seq_id not in cancelled]
            self._retain(lambda s: s.seq_id not in cancelled)
        return True

    def _admit(self) -> None:
        joining = self._next_joining()
        if not joining:
            return
        failure: APIError | None = None
        try:
            newcomers, logits = prefill(self._model, [s.prompt_ids for s in joining], self._device)
            mask_logits(logits, joining)
            chosen, ids = next_tokens(logits, [s.sampler for s in joining])
        except Exception as exc:  # fails the newcomers only; the running batch goes on
            log.exception("prefill failed")
            failure = _generation_failed(exc)
        if failure is not None:
            self._fail(joining, failure)
            free_cached_memory()
            return
        newcomers.last_tokens = chosen[:, None]
        self._running.extend(joining)  # from here a failure fails them with the batch
        self._batch = newcomers if self._batch is None else merge(self._batch, newcomers)
        self._deliver_and_retire(joining, ids)

    def _next_joining(self) -> list[Sequence]:
        """Waiting sequences that fit the batch, up to PREFILL_MAX_TOKENS prompt tokens."""
        room = self._max_batch_size - len(self._running)
        count, tokens = 0, 0
        for sequence in self._waiting[: max(0, room)]:
            tokens += len(sequence.prompt_ids)
            if count and tokens > PREFILL_MAX_TOKENS:
                break
            count += 1
        joining, self._waiting = self._waiting[:count], self._waiting[count:]
        return joining

    def _step(self) -> None:
        assert self._batch is not None
        failure: APIError | None = None
        try:
            logits = decode_step(self._model, self._batch)
            mask_logits(logits, self._running)
            chosen, ids = next_tokens(logits, [s.sampler for s in self._running])
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

    def _deliver_and_retire(self, sequences: list[Sequence], tokens: list[int]) -> None:
        """Hand each sequence its token; drop the sequences that ended from the batch."""
        advance(sequences, tokens)
        posts: dict[asyncio.AbstractEventLoop, list[tuple[Sequence, Delivery]]]
        posts = defaultdict(list)
        finished: set[int] = set()
        for sequence, token in zip(sequences, tokens, strict=True):
            sampler = sequence.sampler
            if token in sampler.params.stop_token_ids:
                posts[sequence.loop].append((sequence, END))
                finished.add(sequence.seq_id)
                continue
            sampler.generated += 1
            posts[sequence.loop].append((sequence, token))
            if (
                sampler.generated >= sampler.params.max_new_tokens
                or sequence.length >= self._max_positions
            ):
                posts[sequence.loop].append((sequence, END))
                finished.add(sequence.seq_id)
        gone = _post(posts)
        if finished or gone:
            self._retain(lambda s: s.seq_id not in finished and s.loop not in gone)

    def _retain(self, keep: Callable[[Sequence], bool]) -> None:
        rows = [i for i, s in enumerate(self._running) if keep(s)]
        if len(rows) == len(self._running):
            return
        self._running = [self._running[i] for i in rows]
        if not rows:
            self._batch = None
        elif self._batch is not None:
            self._batch = keep_rows(self._batch, rows)

    @staticmethod
    def _fail(sequences: list[Sequence], error: BaseException) -> None:
        posts: dict[asyncio.AbstractEventLoop, list[tuple[Sequence, Delivery]]]
        posts = defaultdict(list)
        for sequence in sequences:
            posts[sequence.loop].append((sequence, error))
        _post(posts)


def _generation_failed(exc: BaseException) -> APIError:
    if is_out_of_memory(exc):
        return Overloaded(
            "out of memory on the model's device; retry shortly or with a shorter request",
            code="out_of_memory",
        )
    return GenerationFailed(f"generation failed: {type(exc).__name__}: {exc}")


def _post(
    posts: dict[asyncio.AbstractEventLoop, list[tuple[Sequence, Delivery]]],
) -> set[asyncio.AbstractEventLoop]:
    """One call_soon_threadsafe per event loop; returns loops that are gone (closed)."""
    gone = set()
    for loop, items in posts.items():
        try:
            loop.call_soon_threadsafe(_put_all, items)
        except RuntimeError:  # the loop closed: nobody will read these sequences
            gone.add(loop)
    return gone


def _put_all(items: list[tuple[Sequence, Delivery]]) -> None:
    for sequence, item in items:
        sequence.outbox.put_nowait(item)
