"""Per-key usage: counters by key name, the per-minute window, replay."""

from __future__ import annotations

from helexa.gateway.usage import UsageBook, UsageCollector, UsageRecord


def rec(when: float, key: str, model: str, status: str = "200", tokens: int = 10) -> UsageRecord:
    return UsageRecord(when, key, model, "a", "openai", status, tokens, 2, 1, 0.25)


def test_counters_and_window() -> None:
    book = UsageBook()
    now = 100_000.0
    book.record(rec(now - 7200, "ann", "m1"))  # outside a 1 h window
    book.record(rec(now - 30, "ann", "m1"))
    book.record(rec(now - 20, "ann", "m2", status="429", tokens=0))
    book.record(rec(now - 10, "bo", "m1"))
    exported = {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in UsageCollector(book).collect()
        for sample in family.samples
    }
    assert exported[("cortex_key_requests_total", ("ann", "m1", "200"))] == 2
    assert exported[("cortex_key_errors_total", ("ann", "m2", "429"))] == 1
    assert exported[("cortex_key_tokens_total", ("ann", "m1", "cached"))] == 2
    assert ("cortex_key_errors_total", ("ann", "m1", "200")) not in exported
    hour = book.summary(3600, now)
    ann = hour["keys"][0]
    assert [k["key"] for k in hour["keys"]] == ["ann", "bo"]
    assert (ann["requests"], ann["errors"], ann["input_tokens"]) == (2, 1, 10)
    assert [m["model"] for m in ann["models"]] == ["m1", "m2"]
    assert book.summary(3 * 3600, now)["keys"][0]["requests"] == 3
    assert [k["key"] for k in book.summary(3600, now, key="bo")["keys"]] == ["bo"]


def test_old_minutes_are_dropped_and_replay_keeps_the_last_day() -> None:
    book = UsageBook(keep_s=3600)
    book.record(rec(0, "ann", "m"))
    book.record(rec(7200, "ann", "m"))
    assert len(book.minutes) == 1
    fresh = UsageBook(keep_s=3600)
    assert fresh.replay([rec(0, "ann", "m"), rec(7000, "ann", "m")], now=7200) == 1
    assert fresh.summary(3600, 7200)["keys"][0]["requests"] == 1
