"""Per-key limits: token buckets on a given clock, reservations settled with real usage."""

from __future__ import annotations

import pytest

from helexa.errors import RateLimited
from helexa.gateway.quotas import KeyQuota, Limits, TokenBucket


def test_a_bucket_refills_evenly_over_a_minute_up_to_its_size() -> None:
    bucket = TokenBucket(6, now=0.0)
    bucket.level = 0.0
    assert bucket.refill(5.0) == pytest.approx(0.5)
    assert bucket.wait_for(1.0) == pytest.approx(5.0)
    assert bucket.refill(1000.0) == 6.0


def test_requests_per_minute_refuse_with_the_wait_for_the_next_one() -> None:
    quota = KeyQuota(Limits(requests_per_minute=2), now=0.0)
    quota.take(0, 0.0)
    quota.take(0, 0.0)
    with pytest.raises(RateLimited) as err:
        quota.take(0, 10.0)
    assert err.value.status == 429 and err.value.headers() == {"Retry-After": "20"}
    assert quota.in_flight == 2  # the refused one took nothing
    quota.take(0, 30.0)


def test_tokens_reserve_the_prompt_then_charge_what_was_used() -> None:
    quota = KeyQuota(Limits(tokens_per_minute=100), now=0.0)
    reserved = quota.take(30, 0.0)
    assert reserved == 30 and quota.tokens is not None and quota.tokens.level == 70
    quota.settle(reserved, 150, lambda: 0.0)  # one long answer overshoots by its own size
    assert quota.tokens.level == -50 and quota.in_flight == 0
    with pytest.raises(RateLimited) as err:
        quota.take(10, 0.0)
    assert err.value.retry_after == 36.0  # 60 tokens to refill at 100 per minute
    assert quota.take(10, 36.0) == 10


def test_a_prompt_larger_than_the_bucket_waits_for_a_full_bucket() -> None:
    quota = KeyQuota(Limits(tokens_per_minute=100), now=0.0)
    assert quota.take(10_000, 0.0) == 100


def test_the_concurrency_cap() -> None:
    quota = KeyQuota(Limits(max_concurrent=1), now=0.0)
    quota.take(0, 0.0)
    with pytest.raises(RateLimited) as err:
        quota.take(0, 0.0)
    assert err.value.retry_after == 1.0
    quota.settle(0, 0, lambda: 0.0)
    quota.take(0, 0.0)


def test_new_limits_keep_what_was_used() -> None:
    quota = KeyQuota(Limits(requests_per_minute=10), now=0.0)
    for _ in range(4):
        quota.take(0, 0.0)
    quota.set_limits(Limits(requests_per_minute=5), 0.0)
    assert quota.requests is not None and quota.requests.level == 1.0
    quota.set_limits(Limits(), 0.0)
    assert quota.requests is None
