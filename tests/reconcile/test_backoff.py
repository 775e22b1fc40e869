"""Backoff doubles per failure up to a cap and clears on success."""

from __future__ import annotations

from helexa.reconcile.backoff import Backoff


def test_delays_double_up_to_the_cap_and_success_clears() -> None:
    backoff = Backoff(base_s=1.0, max_s=5.0)
    key = ("load", "a", "m")
    assert [backoff.failed(key, 0.0) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.wait_left(key, 2.0) == 3.0
    assert backoff.wait_left(("load", "b", "m"), 2.0) == 0.0
    backoff.succeeded(key)
    assert backoff.wait_left(key, 2.0) == 0.0
    assert backoff.to_json(2.0) == []
