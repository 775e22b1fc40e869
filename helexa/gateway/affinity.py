"""Prefix affinity: which replica a request's prefix most likely lives on (pure).

Consistent hashing with bounded loads (CHWBL, as KubeAI balances by prefix):
the replicas of a model sit on a hash ring, each at `VNODES` points; a request
hashes its affinity key onto the ring and walks clockwise to the first replica
whose load stays within the bound

    load <= (1 + slack) * (total load + 1) / replicas

("+ 1" counts the request being placed, so an idle fleet always accepts).
The bound keeps one hot conversation (or one shared system prompt) from piling
onto one replica; past it the request goes to the next replica on the ring,
which is the same one for every turn of the conversation, so its prefix is
cached there too. A replica joining or leaving moves only the keys whose arc
it takes or gives up (about 1/n of them).

The affinity key is the conversation's explicit session key when it sends one
(`prompt_cache_key` / `user` in OpenAI requests, `metadata.user_id` in
Anthropic ones), else a hash of the part every turn of a conversation shares:
the model, the leading system/developer messages and the first user message.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Points per replica on the ring: enough that two replicas split keys close to
# evenly (the spread of arc sizes shrinks as 1/sqrt(VNODES)).
VNODES = 160
# Each text taken into the prefix hash is cut here: beyond 64 KiB the leading
# bytes already tell conversations apart, and hashing stays cheap per request.
PIECE_CHARS = 65536
# A /v1/completions prompt's key: its leading characters, or token ids.
COMPLETION_PREFIX_CHARS = 1024
COMPLETION_PREFIX_TOKENS = 256


@dataclass(frozen=True)
class AffinityKey:
    """What a request hashes onto the ring: `kind` says where it came from."""

    kind: str  # "session" (the client named its conversation) or "prefix"
    digest: str  # 16 hex digits; the raw session key is never logged

    @property
    def point(self) -> int:
        return int(self.digest, 16)

    def describe(self) -> str:
        return f"{self.kind} affinity key={self.digest[:8]}"


def _digest(*pieces: str) -> str:
    h = hashlib.blake2b(digest_size=8)
    for piece in pieces:
        h.update(piece[:PIECE_CHARS].encode("utf-8", "surrogatepass"))
        h.update(b"\x00")  # a boundary, so ("ab", "c") and ("a", "bc") differ
    return h.hexdigest()


def session_key(value: str) -> AffinityKey:
    return AffinityKey("session", _digest("session", value))


def _text_of(content: object) -> str:
    """The text of a message's content (a string or a list of parts); other parts
    (images, cache_control markers that move between turns) are left out."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def chat_prefix_key(model: str, messages: object) -> AffinityKey | None:
    """The key of an OpenAI chat body's shared prefix: its leading system/developer
    messages and the first user message (None when there is no user message)."""
    if not isinstance(messages, list):
        return None
    pieces = ["chat", model]
    for message in messages:
        if not isinstance(message, Mapping):
            return None
        role = message.get("role")
        pieces += [str(role), _text_of(message.get("content"))]
        if role == "user":
            return AffinityKey("prefix", _digest(*pieces))
        if role not in ("system", "developer"):
            return None  # a conversation that opens otherwise: no stable prefix to name
    return None


def completion_prefix_key(model: str, prompt: object) -> AffinityKey | None:
    """The key of a /v1/completions prompt: its first `COMPLETION_PREFIX_CHARS`
    characters (or token ids). A raw prompt has no message structure to say where
    the shared part ends, and a conversation grows at the end, so only a fixed
    leading span stays the same from turn to turn (KubeAI hashes 100 characters)."""
    if isinstance(prompt, list) and prompt:
        first = prompt[0]
        if isinstance(first, str):
            prompt = first
        else:
            prompt = " ".join(map(str, prompt[:COMPLETION_PREFIX_TOKENS]))
    if not isinstance(prompt, str) or not prompt:
        return None
    return AffinityKey("prefix", _digest("completion", model, prompt[:COMPLETION_PREFIX_CHARS]))


def first_string(*values: object) -> str | None:
    """The first non-empty string among `values` (the session key fields, by precedence)."""
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def body_prefix_key(model: str, body: Mapping[str, Any]) -> AffinityKey | None:
    """The prefix key of an OpenAI chat (`messages`) or completions (`prompt`) body."""
    if "messages" in body:
        return chat_prefix_key(model, body.get("messages"))
    return completion_prefix_key(model, body.get("prompt"))


# --- the ring -----------------------------------------------------------------


def _point(label: str) -> int:
    return int(hashlib.blake2b(label.encode(), digest_size=8).hexdigest(), 16)


@lru_cache(maxsize=256)
def ring(replicas: tuple[str, ...]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The sorted ring points of `replicas` (sorted names) and each point's owner.

    Cached: the set of replicas of a model changes rarely, requests often."""
    points = sorted((_point(f"{name}#{i}"), name) for name in replicas for i in range(VNODES))
    return tuple(p for p, _ in points), tuple(n for _, n in points)


def ring_order(point: int, replicas: Sequence[str]) -> list[str]:
    """Every replica once, in the order met walking clockwise from `point`."""
    names = tuple(sorted(set(replicas)))
    if len(names) <= 1:
        return list(names)
    points, owners = ring(names)
    start = bisect.bisect_left(points, point)
    order: list[str] = []
    seen: set[str] = set()
    for i in range(len(points)):
        owner = owners[(start + i) % len(points)]
        if owner not in seen:
            seen.add(owner)
            order.append(owner)
            if len(order) == len(names):
                break
    return order


@dataclass(frozen=True)
class AffinityChoice:
    """The replica a key goes to, and why (the decision log's reason)."""

    target: str
    reason: str


def load_bound(loads: Mapping[str, int], slack: float) -> float:
    """The most a replica may carry and still take this request (see the module doc)."""
    return (1 + slack) * (sum(loads.values()) + 1) / len(loads)


def choose(
    key: AffinityKey,
    loads: Mapping[str, int],
    slack: float,
    capacity: Mapping[str, int] | None = None,
) -> AffinityChoice:
    """Walk the ring from `key` to the first replica within the load bound.

    `loads` maps each replica to its requests in flight and queued. Some replica
    is always within the bound (the least loaded is at most the mean), so the
    walk ends; the first one passed over is named in the reason.

    `capacity` (each replica's request slots, the neuron's max_in_flight): a
    replica with a free slot takes the request even over the bound. A
    continuous-batching neuron adds one more row to its batch at little cost,
    while sending the turn elsewhere costs a prefill of the conversation's whole
    prefix there; the bound only decides once the home replica would queue."""
    bound = load_bound(loads, slack)
    order = ring_order(key.point, list(loads))
    home = order[0]
    slots = capacity or {}
    for name in order:
        if loads[name] <= bound or loads[name] < slots.get(name, 0):
            if name == home:
                return AffinityChoice(name, f"{key.describe()} → {name}")
            return AffinityChoice(
                name,
                f"{key.describe()}: {home} over load bound "
                f"({loads[home]} > {bound:g}) → next on ring {name}",
            )
    least = min(order, key=lambda name: (loads[name], name))  # unreachable with slack >= 0
    return AffinityChoice(least, f"{key.describe()}: all over load bound → least busy {least}")
