"""The retry schedule every platform loop shares (DESIGN §7): pure, no I/O.

After the first failure in a row, one quick retry after about a second (a
blip). After that the waits grow from the loop's interval, doubling, up to
``cap``, each drawn from the top fifth of its ceiling: loops never
synchronise, the longest wait is the cap (so a loop notices the platform is
back within the cap), and late in an outage a fleet sends about
interval / (0.9 cap) of its normal rate, near the floor interval / cap. A
``Retry-After`` the platform sends is honoured (up to ``MAX_RETRY_AFTER``).
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["BLIP", "MAX_RETRY_AFTER", "SPREAD", "retry_delay"]

BLIP = (0.5, 1.5)  # the quick retry after a first failure, seconds
SPREAD = 0.2  # each later wait is drawn from [1 - SPREAD, 1] of its ceiling
MAX_RETRY_AFTER = 600.0  # a platform asking for more is not taken literally


def retry_delay(
    failures: int,
    *,
    interval: float,
    cap: float,
    retry_after: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after the ``failures``-th failure in a row (1: the first)."""
    if failures <= 1:
        low, high = BLIP
        delay = min(cap, low + (high - low) * rng())
    else:
        ceiling = min(cap, interval * 2.0 ** min(failures - 2, 32))
        delay = ceiling * (1.0 - SPREAD * rng())
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay
