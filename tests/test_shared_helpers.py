"""The helpers every app shares: reading HTTP dates and Retry-After, counting attempts in fixed windows
(in the real Redis cache), and the one hierarchy of refusals with the one way a view answers them."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import RequestFactory

from comments import errors as comment_errors
from newsreader import errors
from newsreader.httpdates import LONGEST_WAIT_SECONDS, parse_http_date, retry_after_seconds, seconds_until
from newsreader.ratelimits import count_in_window
from stories import reports

NOW = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)

# --- HTTP dates and Retry-After --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120),
        (" 0 ", 0),
        ("007", 7),
        ("Wed, 21 Oct 2015 07:33:00 GMT", 300),
        ("Wednesday, 21-Oct-15 07:33:00 GMT", 300),  # the obsolete RFC 850 form
        ("Wed Oct 21 07:33:00 2015", 300),  # and asctime's
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0),  # already past
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("١٢٠", None),  # digits, but not ASCII ones
        ("Wed, 21 Oct 2015 07:33:00 +0200", None),  # HTTP dates are always GMT
        ("Wed, 32 Oct 2015 07:33:00 GMT", None),
    ],
)
def test_retry_after_is_read_in_both_forms(value, expected):
    assert retry_after_seconds(value, now=NOW) == expected


@pytest.mark.parametrize(
    "value",
    [
        "99999999999",
        "9" * 5000,  # more digits than int() accepts from text
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ],
)
def test_a_huge_retry_after_is_capped_at_the_longest_wait(value):
    wait = retry_after_seconds(value, now=NOW)

    assert wait == LONGEST_WAIT_SECONDS
    assert NOW + timedelta(seconds=wait) > NOW  # usable as a timedelta without overflowing


def test_an_http_date_is_a_moment_in_utc():
    assert parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT") == NOW
    assert parse_http_date("yesterday") is None
    assert parse_http_date(None) is None


def test_seconds_until_an_expires_date():
    assert seconds_until("Wed, 21 Oct 2015 09:28:00 GMT", now=NOW) == 7200
    assert seconds_until("Wed, 21 Oct 2015 06:28:00 GMT", now=NOW) == 0
    assert seconds_until("0", now=NOW) is None  # a common Expires meaning "already expired", not a date


# --- Fixed-window counters -------------------------------------------------------------------

HOUR_START = 1_800_000_000.0  # a multiple of 3600: an hour's window opens here


def test_attempts_are_counted_within_one_window_and_start_again_in_the_next():
    counts = [count_in_window("reader:7", window_seconds=3600, now=HOUR_START + s) for s in (0, 10, 3599)]
    next_hour = count_in_window("reader:7", window_seconds=3600, now=HOUR_START + 3600)

    assert [count.count for count in counts] == [1, 2, 3]
    assert next_hour.count == 1


def test_the_wait_runs_to_the_end_of_the_window_and_is_never_zero():
    assert count_in_window("reader:7", window_seconds=3600, now=HOUR_START + 600).resets_in == 3000
    assert count_in_window("reader:7", window_seconds=3600, now=HOUR_START + 3599.5).resets_in == 1


def test_counters_are_apart_by_name_and_by_window_size():
    count_in_window("reader:7", window_seconds=60, now=HOUR_START)
    count_in_window("reader:7", window_seconds=60, now=HOUR_START)

    assert count_in_window("reader:8", window_seconds=60, now=HOUR_START).count == 1
    assert count_in_window("reader:7", window_seconds=3600, now=HOUR_START).count == 1
    assert count_in_window("reader:7", window_seconds=60, now=HOUR_START).count == 3


def test_over_a_limit_means_more_attempts_than_it_allows():
    counts = [count_in_window("budget", window_seconds=60, now=HOUR_START) for _ in range(3)]

    assert [count.over(2) for count in counts] == [False, False, True]


# --- Refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (comment_errors.InvalidComment("Write something before posting."), 422),
        (comment_errors.CommentRejected("Please rephrase it."), 422),
        (comment_errors.NotAllowed("You can only delete your own comments."), 403),
        (comment_errors.DuplicateComment("You have already posted this comment."), 409),
        (comment_errors.AlreadyReported("You have already reported this comment."), 409),
        (comment_errors.ModerationError("A suspension must end in the future."), 409),
        (comment_errors.RateLimited("You are commenting too quickly.", retry_after=30), 429),
        (reports.InvalidReport("Choose one of the story's tags."), 422),
        (reports.NotAllowed("Please verify your email address before reporting labels."), 403),
        (reports.AlreadyReported("You have already reported this story's labels."), 409),
        (reports.TooManyReports("You have sent 3 label reports this hour.", retry_after=600), 429),
    ],
)
def test_comment_and_label_report_refusals_share_one_hierarchy(error, status):
    assert isinstance(error, errors.UserError)
    assert error.status == status
    assert error.message == str(error)


def test_an_app_catches_its_own_refusals_and_only_those():
    assert isinstance(comment_errors.RateLimited("slow down"), comment_errors.CommentError)
    assert not isinstance(reports.TooManyReports("slow down"), comment_errors.CommentError)
    assert isinstance(reports.TooManyReports("slow down"), reports.LabelReportError)


@pytest.fixture
def page_request(rf: RequestFactory):
    return rf.get("/")


def test_a_refusal_answers_with_its_status_and_when_to_retry(page_request):
    error = comment_errors.RateLimited("You are commenting too quickly.", code="rate_limit", retry_after=42)

    response = errors.refusal_response(page_request, "comments/_notice.html", {"message": error.message}, error=error)

    assert response.status_code == 429
    assert response["Retry-After"] == "42"
    assert "You are commenting too quickly." in response.content.decode()


def test_a_refusal_without_a_wait_sends_no_retry_after_and_no_error_is_a_plain_page(page_request):
    refused = errors.refusal_response(
        page_request, "comments/_notice.html", {"message": ""}, error=reports.NotAllowed("Verify first.")
    )
    fine = errors.refusal_response(page_request, "comments/_notice.html", {"message": ""}, error=None)

    assert (refused.status_code, refused.has_header("Retry-After")) == (403, False)
    assert (fine.status_code, fine.has_header("Retry-After")) == (200, False)
