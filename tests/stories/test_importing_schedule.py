"""When a source is fetched next: bounds, the feed's hints, activity, backoff and Retry-After."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from stories.importing.schedule import caching_hint_minutes, next_fetch_delay


@pytest.fixture
def rng():
    return random.Random(7)


def test_default_interval_is_about_an_hour_with_jitter(rng):
    delays = {next_fetch_delay(interval_minutes=60, rng=rng) for _ in range(20)}

    assert all(timedelta(minutes=54) <= delay <= timedelta(minutes=66) for delay in delays)
    assert len(delays) > 1


@pytest.mark.parametrize("interval", [1, 5])
def test_never_below_five_minutes(rng, interval):
    assert next_fetch_delay(interval_minutes=interval, items_per_day=10_000, rng=rng) >= timedelta(minutes=5)


def test_never_below_the_feeds_own_hint(rng):
    assert next_fetch_delay(interval_minutes=60, min_interval_minutes=180, rng=rng) >= timedelta(minutes=180)


def test_at_most_a_day_when_healthy(rng):
    assert next_fetch_delay(interval_minutes=5000, rng=rng) <= timedelta(hours=24)


def test_busy_feeds_are_polled_more_often(rng):
    busy = next_fetch_delay(interval_minutes=60, items_per_day=96, rng=rng)

    assert timedelta(minutes=5) <= busy <= timedelta(minutes=17)


def test_failures_back_off_up_to_seven_days(rng):
    delays = [next_fetch_delay(interval_minutes=60, consecutive_errors=n, rng=rng) for n in range(1, 12)]

    assert delays[0] >= timedelta(minutes=100)
    assert max(delays) <= timedelta(days=7)
    assert delays[-1] >= timedelta(days=6)


def test_retry_after_is_always_honoured(rng):
    delay = next_fetch_delay(interval_minutes=60, consecutive_errors=1, retry_after_seconds=10 * 24 * 3600, rng=rng)

    assert delay >= timedelta(days=10)


def test_cache_control_and_expires_give_a_hint():
    now = datetime(2026, 1, 1, tzinfo=UTC)

    assert caching_hint_minutes({"Cache-Control": "public, max-age=1800"}, now=now) == 30
    assert caching_hint_minutes({"Expires": "Thu, 01 Jan 2026 02:00:00 GMT"}, now=now) == 120
    assert caching_hint_minutes({"Expires": "not a date"}, now=now) == 0
