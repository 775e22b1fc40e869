"""One generation request as the owner thread tracks it, and the hand-over of its tokens.

Tokens go back with `loop.call_soon_threadsafe` into one asyncio.Queue per
generation, batched into one call per step and event loop, so the event loop
never blocks on torch and a busy step costs it one wake-up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from helexa.neuron.engine.batch import DecodeBatch
from helexa.neuron.engine.constraint import RowConstraint
from helexa.neuron.engine.sampling import RowSampler


class EndOfSequence:
    """Sentinel put on a generation's queue after its last token."""


END = EndOfSequence()
Delivery = int | EndOfSequence | BaseException


@dataclass(eq=False)
class Generation:
    """One request: its prompt, sampler, outbox, and how far its prompt has been prefilled."""

    seq_id: int
    prompt_ids: list[int]
    sampler: RowSampler
    loop: asyncio.AbstractEventLoop
    outbox: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)
    constraint: RowConstraint | None = field(init=False, default=None)
    generated_ids: list[int] = field(init=False, default_factory=list)  # delivered, no stop id
    # Prompt tokens taken from the prefix cache; set by the owner thread before the first
    # token is posted, so a reader that has seen a token sees its final value.
    cached_tokens: int = field(init=False, default=0)
    # While prefilled in chunks: its own one-row batch and how many prompt tokens it holds.
    partial: DecodeBatch | None = field(init=False, default=None, repr=False)
    prefilled: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        grammar = self.sampler.params.grammar
        if grammar is not None:
            self.constraint = grammar.start()

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + self.sampler.generated


Posts = dict[asyncio.AbstractEventLoop, list[tuple[Generation, Delivery]]]


def post(posts: Posts) -> set[asyncio.AbstractEventLoop]:
    """One call_soon_threadsafe per event loop; returns loops that are gone (closed)."""
    gone = set()
    for loop, items in posts.items():
        try:
            loop.call_soon_threadsafe(_put_all, items)
        except RuntimeError:  # the loop closed: nobody will read these generations
            gone.add(loop)
    return gone


def _put_all(items: list[tuple[Generation, Delivery]]) -> None:
    for generation, item in items:
        generation.outbox.put_nowait(item)
