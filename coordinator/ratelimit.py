"""Per-key token buckets, for per-token rate limits. Pure: the time is passed in (seconds, as a number).

A bucket holds up to ``capacity`` tokens and gains ``refill_per_s`` a second; a request takes one. It is
kept as the moment the bucket will be full again (the generic cell rate algorithm), in microseconds as
exact fractions, so no rounding lets through more than ``capacity + refill_per_s * elapsed`` over any
interval, and the wait it answers is exact to the microsecond: asking again after exactly that long
succeeds, a microsecond sooner does not.

Memory is bounded: a bucket that has filled up again is the same as none and is forgotten, and at most
``max_keys`` are kept (the least recently used goes first; forgetting a bucket only ever lets its key
through sooner, never later).
"""

import math
from collections import OrderedDict
from fractions import Fraction

from .errors import RateLimited

MICROS = 1_000_000


class TokenBuckets:
    def __init__(self, capacity: int, refill_per_s: float | Fraction, max_keys: int = 100_000):
        if capacity < 1:
            raise ValueError(f"a bucket holds at least one token, got capacity {capacity}")
        if not refill_per_s > 0 or math.isinf(refill_per_s):
            raise ValueError(f"a bucket refills at a positive finite rate, got {refill_per_s}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.capacity, self.refill_per_s, self.max_keys = capacity, Fraction(refill_per_s), max_keys
        self._interval = MICROS / self.refill_per_s  # µs a token takes to come back
        self._span = capacity * self._interval       # µs an empty bucket takes to fill
        self._full_at: OrderedDict[str, Fraction] = OrderedDict()

    def take(self, key: str, now: float) -> float | None:
        """Take a token from ``key``'s bucket at ``now``: None if there was one, else the seconds until
        there is (a clock that went back counts as no time passing)."""
        t = round(now * MICROS)
        self._forget(t)
        after = max(self._full_at.get(key, t), t) + self._interval
        short = after - t - self._span  # > 0: the bucket is empty for that many more µs
        if short > 0:
            return math.ceil(short) / MICROS
        self._full_at[key] = after
        self._full_at.move_to_end(key)
        while len(self._full_at) > self.max_keys:
            self._full_at.popitem(last=False)
        return None

    def _forget(self, t: int) -> None:
        """Drop the least recently used buckets while they are full again: amortised O(1) per take."""
        while self._full_at:
            key, full_at = next(iter(self._full_at.items()))
            if full_at > t:
                return
            del self._full_at[key]

    def __len__(self) -> int:
        return len(self._full_at)


class Limit:
    """A rate limit with the words for its refusal: ``count`` requests ``per`` "minute" or "second" per
    key, ``burst`` at once."""

    PER_S = {"second": 1, "minute": 60}

    def __init__(self, what: str, count: int | float, per: str, burst: int, max_keys: int = 100_000):
        self.what, self.count, self.per = what, count, per
        self.buckets = TokenBuckets(burst, Fraction(count) / self.PER_S[per], max_keys)

    def check(self, key: str, now: float) -> None:
        """Take one; raise RateLimited, saying how long to wait, if none is left."""
        wait = self.buckets.take(key, now)
        if wait is not None:
            raise RateLimited(f"Too many {self.what} from this token: at most {_number(self.count)} a {self.per}; "
                              f"try again in {whole_seconds(wait)} s", wait)


def _number(count: int | float) -> str:
    return f"{int(count):,}" if float(count).is_integer() else f"{count:,.3g}"


def whole_seconds(wait_s: float) -> int:
    """A wait as ``Retry-After`` gives it: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait_s))
