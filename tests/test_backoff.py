"""DESIGN §7's retry schedule, as properties of one pure function.

Every wait is within its bounds; the first is a blip; later ones grow from the
interval, doubling, never past the cap; jitter spreads loops over the top fifth
of each ceiling; ``Retry-After`` is honoured up to its own limit. Two numbers
follow: the longest wait is the cap (recovery is noticed within it), and a wait
at the cap averages 0.9 cap (outage load about 1.1x the floor interval / cap).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime_adapter.backoff import BLIP, MAX_RETRY_AFTER, SPREAD, retry_delay

intervals = st.floats(min_value=1, max_value=300)
caps = st.floats(min_value=2, max_value=3600)
draws = st.floats(min_value=0, max_value=0.999999)


@given(st.integers(min_value=1, max_value=200), intervals, caps, draws)
def test_every_wait_is_within_its_bounds(
    failures: int, interval: float, cap: float, u: float
) -> None:
    delay = retry_delay(failures, interval=interval, cap=cap, rng=lambda: u)
    assert 0 < delay <= cap
    if failures == 1:
        assert min(BLIP[0], cap) <= delay <= BLIP[1]
    else:
        ceiling = min(cap, interval * 2 ** (failures - 2))
        assert ceiling * (1 - SPREAD) <= delay <= ceiling


@given(intervals, caps, draws)
def test_waits_grow_from_the_interval_to_the_cap_and_stay_there(
    interval: float, cap: float, u: float
) -> None:
    waits = [retry_delay(n, interval=interval, cap=cap, rng=lambda: u) for n in range(2, 40)]
    assert waits == sorted(waits)  # never shrinking, for the same draw
    assert waits[0] == pytest.approx(min(cap, interval) * (1 - SPREAD * u))
    assert waits[-1] == pytest.approx(cap * (1 - SPREAD * u))


@given(st.integers(min_value=1, max_value=50), intervals, caps, st.floats(0, 10**6))
def test_retry_after_is_honoured_up_to_its_limit(
    failures: int, interval: float, cap: float, asked: float
) -> None:
    delay = retry_delay(failures, interval=interval, cap=cap, retry_after=asked, rng=lambda: 0.5)
    assert delay >= min(asked, MAX_RETRY_AFTER)
    assert delay <= max(cap, min(asked, MAX_RETRY_AFTER))


def test_jitter_spreads_a_fleet_over_the_top_fifth_and_averages_point_nine() -> None:
    rng = random.Random(7)
    waits = [retry_delay(10, interval=30, cap=60, rng=rng.random) for _ in range(20_000)]
    assert min(waits) >= 48
    assert max(waits) <= 60
    assert sum(waits) / len(waits) == pytest.approx(54, abs=0.3)
    # spread: every 1 s bucket of the window gets its share (no synchronised herd)
    buckets = [sum(1 for w in waits if k <= w < k + 1) for k in range(48, 60)]
    assert min(buckets) > 0.7 * len(waits) / 12


def test_the_first_retry_is_a_blip_then_the_interval() -> None:
    assert retry_delay(1, interval=30, cap=60, rng=lambda: 0.5) == pytest.approx(1.0)
    assert retry_delay(2, interval=30, cap=60, rng=lambda: 0.0) == 30.0
    assert retry_delay(3, interval=30, cap=60, rng=lambda: 0.0) == 60.0
    assert retry_delay(9, interval=30, cap=300, rng=lambda: 0.0) == 300.0
