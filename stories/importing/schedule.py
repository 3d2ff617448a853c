"""When to fetch a source next: its interval, the feed's own caching hints, activity and backoff."""

import random
from datetime import datetime, timedelta

from django.utils import timezone

from newsreader.httpdates import seconds_until

MIN_INTERVAL = timedelta(minutes=5)
MAX_INTERVAL = timedelta(hours=24)
MAX_BACKOFF = timedelta(days=7)
JITTER_SHARE = 0.1


def caching_hint_minutes(headers: dict[str, str], *, now: datetime | None = None) -> int:
    """The least time, in minutes, the server asks us to wait (Cache-Control max-age, Expires)."""
    now = now or timezone.now()
    lowered = {name.lower(): value for name, value in headers.items()}
    minutes = 0
    for directive in lowered.get("cache-control", "").split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() in ("max-age", "s-maxage") and value.strip().isdigit():
            minutes = max(minutes, int(value) // 60)
    if "expires" in lowered and not minutes:
        minutes = (seconds_until(lowered["expires"], now=now) or 0) // 60
    return minutes


def next_fetch_delay(
    *,
    interval_minutes: int,
    min_interval_minutes: int = 0,
    items_per_day: float = 0.0,
    consecutive_errors: int = 0,
    retry_after_seconds: int | None = None,
    rng: random.Random | None = None,
) -> timedelta:
    """How long to wait before the next fetch.

    The configured interval shrinks for feeds that post often (about two polls per new item),
    never below five minutes nor the feed's own hints, never above a day. Failures double it up to
    seven days; a Retry-After is always honoured. A little jitter keeps sources from moving in step.
    """
    rng = rng or random
    floor = max(MIN_INTERVAL, timedelta(minutes=min_interval_minutes))
    ceiling = MAX_INTERVAL
    delay = timedelta(minutes=interval_minutes)
    if items_per_day > 0:
        delay = min(delay, timedelta(days=1) / (items_per_day * 2))
    if consecutive_errors:
        delay = delay * (2 ** min(consecutive_errors, 12))
        ceiling = MAX_BACKOFF
    delay = delay * (1 + rng.uniform(-JITTER_SHARE, JITTER_SHARE))
    delay = min(max(delay, floor), max(ceiling, floor))
    if retry_after_seconds:
        delay = max(delay, timedelta(seconds=retry_after_seconds))
    return delay


TRANSIENT_RETRIES = 3
TRANSIENT_RETRY_BASE = timedelta(seconds=30)


def transient_retry_delay(consecutive_errors: int) -> timedelta | None:
    """A short wait after network trouble that may pass (30 s, 1 min, 2 min), or None once that has
    failed TRANSIENT_RETRIES times in a row and the usual backoff takes over."""
    if not 0 < consecutive_errors <= TRANSIENT_RETRIES:
        return None
    return TRANSIENT_RETRY_BASE * 2 ** (consecutive_errors - 1)
