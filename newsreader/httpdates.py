"""HTTP dates and Retry-After, read one way for every outbound client (feeds, the labelling endpoint).

Dates are parsed by Django's RFC 9110 parser (IMF-fixdate, the obsolete RFC 850 and asctime forms).
A wait is never negative and never longer than LONGEST_WAIT_SECONDS, so a server's absurd answer
cannot overflow a `timedelta` or park a job for centuries.
"""

from datetime import UTC, datetime

from django.utils.http import parse_http_date_safe

LONGEST_WAIT_SECONDS = 365 * 24 * 3600


def parse_http_date(value: str | None) -> datetime | None:
    """The moment an HTTP date names, in UTC; None when absent or unreadable."""
    seconds = parse_http_date_safe((value or "").strip())
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> int | None:
    """Whole seconds to wait according to a Retry-After header, in either of its forms: delta-seconds
    ("120") or an HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT"); 0 for a date already past. None when
    the header is absent or unreadable (a negative or fractional number, a local date format)."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        digits = value.lstrip("0") or "0"
        # Measured as text first: int() refuses numbers of more than a few thousand digits.
        if len(digits) > len(str(LONGEST_WAIT_SECONDS)):
            return LONGEST_WAIT_SECONDS
        return min(int(digits), LONGEST_WAIT_SECONDS)
    return seconds_until(value, now=now)


def seconds_until(value: str | None, *, now: datetime | None = None) -> int | None:
    """Whole seconds from now until the HTTP date in `value` (an Expires header): 0 when it is past,
    None when unreadable."""
    when = parse_http_date(value)
    if when is None:
        return None
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(0, round(seconds)), LONGEST_WAIT_SECONDS)
