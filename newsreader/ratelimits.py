"""Fixed-window counters in the shared cache (Redis in production), for limits such as "at most N an hour".

Every process counting under one name shares the count. While Redis is down the cache drops writes
(newsreader/cache.py), so each attempt counts as the window's first: a limit lets requests through
rather than refusing everyone.
"""

import math
import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class WindowCount:
    """How many attempts the current window has seen, this one included, and when the window ends."""

    count: int
    resets_in: int

    def over(self, limit: int) -> bool:
        return self.count > limit


def count_in_window(name: str, *, window_seconds: int, now: float | None = None) -> WindowCount:
    """Count one attempt under `name` in the current window: the clock cut into `window_seconds` slices,
    so every counter of one size starts and ends together."""
    now = time.time() if now is None else now
    window = int(now // window_seconds)
    key = f"newsreader:window:{window_seconds}:{name}:{window}"
    # A key made at any moment of its window outlives the window.
    cache.add(key, 0, timeout=window_seconds)
    try:
        count = cache.incr(key)
    except ValueError:
        # The key expired between add and incr (or the cache is away): this attempt opens the count.
        cache.set(key, 1, timeout=window_seconds)
        count = 1
    resets_in = max(1, math.ceil((window + 1) * window_seconds - now))
    return WindowCount(count=count, resets_in=resets_in)
