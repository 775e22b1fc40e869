"""Prefix affinity (pure): the keys requests hash to, the ring, the load bound."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from helexa.gateway.affinity import (
    AffinityKey,
    body_prefix_key,
    chat_prefix_key,
    choose,
    completion_prefix_key,
    load_bound,
    ring_order,
    session_key,
)

KEYS = [session_key(f"conversation-{i}") for i in range(3000)]
SYSTEM = {"role": "system", "content": "You are a coding agent. " * 50}


def home(key: AffinityKey, replicas: list[str]) -> str:
    return ring_order(key.point, replicas)[0]


def test_ring_order_names_every_replica_once() -> None:
    for key in KEYS[:50]:
        order = ring_order(key.point, ["c", "a", "b", "a"])
        assert sorted(order) == ["a", "b", "c"]
    assert ring_order(1, ["a"]) == ["a"] and ring_order(1, []) == []


def test_keys_spread_over_the_replicas() -> None:
    shares = Counter(home(key, ["a", "b", "c"]) for key in KEYS)
    for name in "abc":
        assert 0.25 < shares[name] / len(KEYS) < 0.42, shares


def test_a_replica_joining_moves_only_the_keys_it_takes() -> None:
    before = {key: home(key, ["a", "b", "c"]) for key in KEYS}
    after = {key: home(key, ["a", "b", "c", "d"]) for key in KEYS}
    moved = [key for key in KEYS if before[key] != after[key]]
    assert all(after[key] == "d" for key in moved)  # nothing moves between old replicas
    assert 0.15 < len(moved) / len(KEYS) < 0.35  # about 1/4


def test_a_replica_leaving_moves_only_its_own_keys() -> None:
    before = {key: home(key, ["a", "b", "c", "d"]) for key in KEYS}
    after = {key: home(key, ["a", "b", "c"]) for key in KEYS}
    moved = [key for key in KEYS if before[key] != after[key]]
    assert {before[key] for key in moved} == {"d"}
    assert len(moved) == sum(1 for key in KEYS if before[key] == "d")


def test_choose_keeps_the_home_replica_within_the_bound() -> None:
    key = KEYS[0]
    first, second = ring_order(key.point, ["a", "b"])
    # bound = 1.25 * (2 + 0 + 1) / 2 = 1.875: 2 in flight on the home replica is over it.
    assert choose(key, {first: 1, second: 0}, 0.25).target == first
    over = choose(key, {first: 2, second: 0}, 0.25)
    assert over.target == second
    assert over.reason.endswith(f"{first} over load bound (2 > 1.875) → next on ring {second}")
    # A larger slack lets the home replica carry more before it sheds.
    assert choose(key, {first: 2, second: 0}, 1.0).target == first
    # So does a free slot on it; a full one sheds again.
    assert choose(key, {first: 2, second: 0}, 0.25, {first: 3, second: 3}).target == first
    assert choose(key, {first: 3, second: 0}, 0.25, {first: 3, second: 3}).target == second


def test_load_bound_is_honoured_under_a_stream_of_one_hot_key() -> None:
    """Every request of one conversation arrives while the others still run: no
    replica ever takes one past (1 + slack) x the mean load."""
    key, slack = KEYS[1], 0.25
    loads = dict.fromkeys("abc", 0)
    for _ in range(60):
        bound = load_bound(loads, slack)
        target = choose(key, loads, slack).target
        assert loads[target] <= bound
        loads[target] += 1
    assert max(loads.values()) <= 1.25 * 60 / 3 + 1


def turn(n: int, first_user: str, *, system: dict[str, Any] = SYSTEM) -> list[dict[str, Any]]:
    """The messages of turn n of one conversation: the prefix grows, the start stays."""
    messages: list[dict[str, Any]] = [system, {"role": "user", "content": first_user}]
    for i in range(1, n):
        messages += [
            {"role": "assistant", "content": f"answer {i}"},
            {"role": "user", "content": f"follow-up {i}"},
        ]
    return messages


def test_every_turn_of_a_conversation_has_one_prefix_key() -> None:
    keys = {chat_prefix_key("m", turn(n, "fix the parser")) for n in range(1, 7)}
    assert len(keys) == 1 and None not in keys
    assert chat_prefix_key("m", turn(1, "write the docs")) not in keys  # another conversation
    assert chat_prefix_key("other", turn(1, "fix the parser")) not in keys  # another model


def test_prefix_key_reads_text_parts_and_ignores_moving_cache_markers() -> None:
    marked = {"type": "text", "text": "fix the parser", "cache_control": {"type": "ephemeral"}}
    first = [SYSTEM, {"role": "user", "content": [marked]}]
    later = [SYSTEM, {"role": "user", "content": [{"type": "text", "text": "fix the parser"}]}]
    assert chat_prefix_key("m", first) == chat_prefix_key("m", later)
    assert chat_prefix_key("m", first) == chat_prefix_key("m", turn(1, "fix the parser"))


@pytest.mark.parametrize(
    "messages",
    [
        None,
        [],
        [SYSTEM],  # no user message yet
        [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}],
        ["not a message"],
    ],
)
def test_no_prefix_key_without_a_leading_user_message(messages: Any) -> None:
    assert chat_prefix_key("m", messages) is None


def test_completion_prefix_key() -> None:
    assert completion_prefix_key("m", "abc") == completion_prefix_key("m", ["abc", "def"])
    assert completion_prefix_key("m", [1, 2, 3]) == completion_prefix_key("m", [1, 2, 3])
    assert completion_prefix_key("m", [1, 2, 3]) != completion_prefix_key("m", [1, 2, 4])
    # A conversation grows at the end: its leading span, and so its key, stays.
    turn_1 = "You are a coding agent. " * 50 + "User: fix the parser\nAssistant:"
    turn_2 = turn_1 + " Done.\nUser: now the docs\nAssistant:"
    assert completion_prefix_key("m", turn_1) == completion_prefix_key("m", turn_2)
    long_ids = list(range(1000))
    assert completion_prefix_key("m", long_ids) == completion_prefix_key("m", [*long_ids, 7])
    assert completion_prefix_key("m", "") is None and completion_prefix_key("m", 5) is None
    assert body_prefix_key("m", {"prompt": "abc"}) == completion_prefix_key("m", "abc")
    assert body_prefix_key("m", {"messages": turn(2, "q")}) == chat_prefix_key("m", turn(1, "q"))


def test_a_session_key_is_hashed_and_never_shown() -> None:
    key = session_key("user_4f2a_account__session_0190c0de")
    assert key.kind == "session" and len(key.digest) == 16
    assert "0190c0de" not in key.describe()
    assert key.describe() == f"session affinity key={key.digest[:8]}"
