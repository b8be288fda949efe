"""Token buckets: never more than capacity + rate x elapsed over any interval; the wait is exact."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from coordinator.errors import RateLimited
from coordinator.ratelimit import MICROS, Limit, TokenBuckets, whole_seconds

capacities = hs.integers(1, 20)
rates = hs.sampled_from([0.1, 0.5, 1, 2, 3, 7.5, 30, Fraction(120, 60), Fraction(1, 3)])
# times in whole microseconds from a unix-epoch-like start, as the app's clock gives them
gaps = hs.lists(hs.tuples(hs.integers(0, 3_000_000), hs.sampled_from("ab")), min_size=1, max_size=120)
START_US = 1_790_000_000 * MICROS


def times(steps):
    t, out = START_US, []
    for gap, key in steps:
        t += gap
        out.append((t, key))
    return out


@settings(max_examples=300, deadline=None)
@given(capacity=capacities, rate=rates, steps=gaps)
def test_never_more_than_capacity_plus_rate_times_elapsed_over_any_interval(capacity, rate, steps):
    buckets = TokenBuckets(capacity, rate)
    allowed: dict[str, list[int]] = {"a": [], "b": []}
    for t, key in times(steps):
        if buckets.take(key, t / MICROS) is None:
            allowed[key].append(t)
    for ts in allowed.values():
        for i in range(len(ts)):
            for j in range(i, len(ts)):
                elapsed = Fraction(ts[j] - ts[i], MICROS)
                assert j - i + 1 <= capacity + Fraction(rate) * elapsed


@settings(max_examples=300, deadline=None)
@given(capacity=capacities, rate=rates, steps=gaps)
def test_the_wait_is_exact_to_the_microsecond(capacity, rate, steps):
    buckets = TokenBuckets(capacity, rate)
    for t, key in times(steps):
        wait = buckets.take(key, t / MICROS)
        if wait is None:
            continue
        wait_us = round(wait * MICROS)
        assert wait_us >= 1
        if wait_us > 1:
            assert buckets.take(key, (t + wait_us - 1) / MICROS) is not None, "allowed before the wait was over"
        assert buckets.take(key, (t + wait_us) / MICROS) is None, "refused after waiting as told"


def test_a_full_burst_then_one_token_per_interval():
    buckets = TokenBuckets(30, Fraction(120, 60))
    now = 1_790_000_000.0
    assert all(buckets.take("t", now) is None for _ in range(30))
    assert buckets.take("t", now) == 0.5
    assert buckets.take("other", now) is None  # keys do not share
    assert buckets.take("t", now + 0.5) is None
    assert buckets.take("t", now + 0.5) == 0.5


def test_a_clock_that_goes_back_counts_as_no_time():
    buckets = TokenBuckets(1, 1)
    assert buckets.take("t", 100.0) is None
    assert buckets.take("t", 50.0) is not None
    assert buckets.take("t", 101.0) is None


def test_memory_is_bounded_and_full_buckets_are_forgotten():
    buckets = TokenBuckets(2, 1, max_keys=100)
    for n in range(1000):
        buckets.take(f"k{n}", 0.0)
        assert len(buckets) <= 100
    assert buckets.take("k999", 0.0) is None and buckets.take("k999", 0.0) is not None  # the recent one is kept
    buckets.take("late", 10.0)  # every other bucket filled up again long ago
    assert len(buckets) == 1


@pytest.mark.parametrize("capacity,rate,max_keys", [(0, 1, 10), (1, 0, 10), (1, -1, 10), (1, float("nan"), 10),
                                                    (1, float("inf"), 10), (1, 1, 0)])
def test_nonsense_parameters_are_refused(capacity, rate, max_keys):
    with pytest.raises(ValueError):
        TokenBuckets(capacity, rate, max_keys)


def test_a_limit_says_what_how_many_and_how_long():
    limit = Limit("reports", 120, "minute", 2)
    limit.check("t", 0.0)
    limit.check("t", 0.0)
    with pytest.raises(RateLimited) as refused:
        limit.check("t", 0.0)
    assert refused.value.message == "Too many reports from this token: at most 120 a minute; try again in 1 s"
    assert refused.value.retry_after_s == 0.5 and refused.value.code == "rate_limited"


def test_whole_seconds_rounds_up_and_is_at_least_one():
    assert [whole_seconds(w) for w in (0.000001, 0.5, 1.0, 1.000001, 29.2)] == [1, 1, 1, 2, 30]
