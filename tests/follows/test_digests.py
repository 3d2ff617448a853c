"""The daily or weekly email digest of the best new stories among what a reader follows."""

import smtplib
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from follows import digests, services
from follows.models import DigestedStory, DigestSettings
from tests.factories import StoryFactory, UserFactory


def subscribe(reader, frequency: str = "daily", **fields) -> DigestSettings:
    """A reader whose digest is due now."""
    return DigestSettings.objects.create(
        reader=reader, frequency=frequency, next_due_at=timezone.now() - timedelta(minutes=1), **fields
    )


def hours_ago(hours: float):
    return timezone.now() - timedelta(hours=hours)


@pytest.fixture
def mail_links(settings):
    settings.COMMENTS_EMAIL_BASE_URL = "https://news.example.org"


# --- When a digest is due ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "hour", "zone", "now", "due"),
    [
        # 06:30 in Oslo (UTC+1 in winter): today at 07:00 local is 06:00 UTC
        ("daily", 7, "Europe/Oslo", datetime(2026, 12, 2, 5, 30, tzinfo=UTC), datetime(2026, 12, 2, 6, 0, tzinfo=UTC)),
        # 07:00 local has passed: tomorrow
        ("daily", 7, "Europe/Oslo", datetime(2026, 12, 2, 6, 0, tzinfo=UTC), datetime(2026, 12, 3, 6, 0, tzinfo=UTC)),
        # summer time in New York (UTC-4)
        (
            "daily",
            18,
            "America/New_York",
            datetime(2026, 7, 1, 12, 0, tzinfo=UTC),
            datetime(2026, 7, 1, 22, 0, tzinfo=UTC),
        ),
        # Wednesday 2 December 2026: the next Monday is the 7th
        ("weekly", 9, "UTC", datetime(2026, 12, 2, 12, 0, tzinfo=UTC), datetime(2026, 12, 7, 9, 0, tzinfo=UTC)),
        # already Tokyo's Monday (UTC+9) when it is still Sunday in UTC
        ("weekly", 8, "Asia/Tokyo", datetime(2026, 12, 6, 22, 0, tzinfo=UTC), datetime(2026, 12, 6, 23, 0, tzinfo=UTC)),
    ],
)
def test_digest_is_due_at_the_readers_hour_in_their_time_zone(frequency, hour, zone, now, due):
    assert DigestSettings(frequency=frequency, hour=hour, time_zone=zone).next_due_after(now) == due


def test_a_digest_that_is_off_is_never_due():
    assert DigestSettings(frequency="off").next_due_after(timezone.now()) is None


def test_reader_chooses_a_daily_digest_at_an_hour_in_their_time_zone(client, reader):
    client.force_login(reader)
    assert "Send me a digest" in client.get("/digest/").content.decode()

    response = client.post("/digest/", {"frequency": "daily", "hour": "7", "time_zone": "Europe/Oslo"})

    assert response.status_code == 302
    chosen = DigestSettings.objects.get(reader=reader)
    assert (chosen.frequency, chosen.hour, chosen.time_zone) == ("daily", 7, "Europe/Oslo")
    assert timezone.now() < chosen.next_due_at <= timezone.now() + timedelta(days=1)


def test_an_unknown_time_zone_is_refused(client, reader):
    client.force_login(reader)

    response = client.post("/digest/", {"frequency": "daily", "hour": "7", "time_zone": "Mars/Olympus"})

    assert response.status_code == 422
    assert not DigestSettings.objects.exists()


# --- What a digest holds -----------------------------------------------------------------------


def test_digest_mails_the_best_new_stories_of_what_the_reader_follows(reader, newsroom, mail_links):
    services.follow(reader=reader, kind="section", slug="sport")
    quiet = StoryFactory(title="Quiet match report", section=newsroom.sport, published_at=hours_ago(3))
    discussed = StoryFactory(title="Much discussed transfer", section=newsroom.sport, published_at=hours_ago(5))
    read = StoryFactory(title="Widely read preview", section=newsroom.sport, published_at=hours_ago(4))
    tied_newer = StoryFactory(title="Another quiet report", section=newsroom.sport, published_at=hours_ago(2))
    StoryFactory(title="Last week's result", section=newsroom.sport, published_at=hours_ago(30))
    StoryFactory(title="A science story", section=newsroom.science, published_at=hours_ago(1))
    discussed.comment_count, read.view_count = 4, 25  # scores 40 and 25
    discussed.save()
    read.save()
    subscribe(reader)

    run = digests.send_due_digests()

    assert (run.readers, run.sent) == (1, 1)
    [message] = mail.outbox
    assert message.to == [reader.email]
    body = message.body
    order = [body.index(story.title) for story in (discussed, read, tied_newer, quiet)]
    assert order == sorted(order)
    assert "Last week's result" not in body and "A science story" not in body
    assert f"https://news.example.org{discussed.get_absolute_url()}" in body
    assert "Much discussed transfer" in message.alternatives[0][0]
    assert set(DigestedStory.objects.filter(reader=reader).values_list("story_id", flat=True)) == {
        quiet.pk,
        discussed.pk,
        read.pk,
        tied_newer.pk,
    }


def test_digest_holds_at_most_the_configured_number_of_stories(reader, newsroom, settings):
    settings.DIGEST_STORIES = 2
    services.follow(reader=reader, kind="section", slug="sport")
    StoryFactory.create_batch(4, section=newsroom.sport, published_at=hours_ago(1))
    subscribe(reader)

    digests.send_due_digests()

    assert DigestedStory.objects.filter(reader=reader).count() == 2
    assert "2 new stories" in mail.outbox[0].subject


def test_weekly_digest_looks_back_a_week(reader, newsroom):
    services.follow(reader=reader, kind="region", slug="europe")
    StoryFactory(title="Fjord bridge opens", region=newsroom.norway, published_at=hours_ago(24 * 6))
    StoryFactory(title="Too old for the week", region=newsroom.norway, published_at=hours_ago(24 * 8))
    subscribe(reader, frequency="weekly")

    digests.send_due_digests()

    assert "Fjord bridge opens" in mail.outbox[0].body
    assert "Too old for the week" not in mail.outbox[0].body


def test_nothing_is_sent_when_nothing_is_new(reader, newsroom):
    services.follow(reader=reader, kind="section", slug="sport")
    StoryFactory(section=newsroom.science, published_at=hours_ago(1))
    subscribe(reader)

    run = digests.send_due_digests()

    assert (run.readers, run.sent, run.nothing_new) == (1, 0, 1)
    assert mail.outbox == []
    settings_after = DigestSettings.objects.get(reader=reader)
    assert settings_after.last_sent_at is None
    assert settings_after.next_due_at > timezone.now()


def test_no_story_goes_to_the_same_reader_twice(reader, newsroom):
    services.follow(reader=reader, kind="section", slug="sport")
    services.follow(reader=reader, kind="tag", slug="ferries")
    first = StoryFactory(
        title="Ferry derby", section=newsroom.sport, tags=[newsroom.ferries], published_at=hours_ago(2)
    )
    subscribe(reader)
    digests.send_due_digests()
    # The reader switches to weekly: the window reaches back past their last digest.
    DigestSettings.objects.filter(reader=reader).update(
        frequency="weekly", last_sent_at=None, next_due_at=timezone.now() - timedelta(minutes=1)
    )
    second = StoryFactory(title="Rematch announced", section=newsroom.sport, published_at=hours_ago(1))

    digests.send_due_digests()

    assert len(mail.outbox) == 2
    assert first.title not in mail.outbox[1].body
    assert second.title in mail.outbox[1].body
    assert mail.outbox[0].body.count(first.title) == 1


def test_running_again_within_the_hour_sends_nothing_more(reader, newsroom):
    services.follow(reader=reader, kind="section", slug="sport")
    StoryFactory(section=newsroom.sport, published_at=hours_ago(1))
    subscribe(reader)

    digests.send_due_digests()
    again = digests.send_due_digests()

    assert again.readers == 0
    assert len(mail.outbox) == 1


def test_only_due_readers_with_a_verified_address_get_a_digest(newsroom):
    due, not_yet, off, unverified = UserFactory(), UserFactory(), UserFactory(), UserFactory(verified=False)
    for reader in (due, not_yet, off, unverified):
        services.follow(reader=reader, kind="section", slug="sport")
    StoryFactory(section=newsroom.sport, published_at=hours_ago(1))
    subscribe(due)
    subscribe(unverified)
    DigestSettings.objects.create(reader=not_yet, frequency="daily", next_due_at=timezone.now() + timedelta(hours=3))
    DigestSettings.objects.create(reader=off, frequency="off", next_due_at=timezone.now() - timedelta(hours=1))

    digests.send_due_digests()

    assert [message.to for message in mail.outbox] == [[due.email]]


def test_digests_are_built_in_batches_with_the_same_queries_for_any_number_of_readers(newsroom, settings, mail_links):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    StoryFactory.create_batch(5, section=newsroom.sport, region=newsroom.norway, published_at=hours_ago(1))
    StoryFactory.create_batch(5, section=newsroom.science, tags=[newsroom.tides], published_at=hours_ago(1))

    def queries_for(count: int) -> int:
        DigestSettings.objects.all().delete()
        for _ in range(count):
            reader = UserFactory()
            services.follow(reader=reader, kind="section", slug="sport")
            services.follow(reader=reader, kind="tag", slug="tides")
            subscribe(reader)
        with CaptureQueriesContext(connection) as captured:
            run = digests.send_due_digests(batch_size=100)
        assert run.sent == count
        return len(captured.captured_queries)

    assert queries_for(2) == queries_for(12)


def test_batches_cover_every_due_reader(newsroom):
    readers = UserFactory.create_batch(5)
    for reader in readers:
        services.follow(reader=reader, kind="section", slug="sport")
        subscribe(reader)
    StoryFactory(section=newsroom.sport, published_at=hours_ago(1))

    run = digests.send_due_digests(batch_size=2)

    assert (run.readers, run.sent) == (5, 5)
    assert sorted(m.to[0] for m in mail.outbox) == sorted(r.email for r in readers)


class RefusingBackend:
    """A mail server that refuses every message."""

    def __init__(self, **kwargs) -> None:
        pass

    def send_messages(self, messages):
        raise smtplib.SMTPServerDisconnected("the mail server went away")

    def close(self) -> None:
        pass


def test_a_refused_mail_is_tried_again_by_the_next_run(reader, newsroom, settings):
    services.follow(reader=reader, kind="section", slug="sport")
    story = StoryFactory(section=newsroom.sport, published_at=hours_ago(1))
    subscribe(reader)
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"

    failed = digests.send_due_digests()

    assert failed.failed == 1
    assert not DigestedStory.objects.exists()
    assert DigestSettings.objects.get(reader=reader).next_due_at <= timezone.now()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    retried = digests.send_due_digests()
    assert retried.sent == 1
    assert story.title in mail.outbox[0].body


def test_hourly_beat_task_sends_due_digests(reader, newsroom, settings):
    from follows.tasks import send_due_digests_task

    assert settings.CELERY_BEAT_SCHEDULE["send-due-digests"]["task"] == "follows.tasks.send_due_digests_task"
    services.follow(reader=reader, kind="section", slug="sport")
    StoryFactory(section=newsroom.sport, published_at=hours_ago(1))
    subscribe(reader)

    assert send_due_digests_task() == {"readers": 1, "sent": 1, "nothing_new": 0, "failed": 0}


# --- Unsubscribing -----------------------------------------------------------------------------


def sent_digest(reader, newsroom):
    services.follow(reader=reader, kind="section", slug="sport")
    StoryFactory(section=newsroom.sport, published_at=hours_ago(1))
    subscribe(reader)
    digests.send_due_digests()
    return mail.outbox[-1]


def test_digest_carries_one_click_unsubscribe_headers(reader, newsroom, mail_links):
    message = sent_digest(reader, newsroom)

    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message.extra_headers["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://news.example.org/digest/unsubscribe/")
    assert url in message.body


def test_one_click_unsubscribe_works_without_logging_in_or_a_csrf_token(reader, newsroom, mail_links):
    from django.test import Client

    message = sent_digest(reader, newsroom)
    path = message.extra_headers["List-Unsubscribe"].strip("<>").removeprefix("https://news.example.org")
    client = Client(enforce_csrf_checks=True)

    response = client.post(path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert DigestSettings.objects.get(reader=reader).frequency == "off"


def test_opening_the_unsubscribe_link_asks_before_unsubscribing(client, reader, newsroom, mail_links):
    message = sent_digest(reader, newsroom)
    path = message.extra_headers["List-Unsubscribe"].strip("<>").removeprefix("https://news.example.org")

    html = client.get(path).content.decode()

    assert "Stop digest emails" in html
    assert DigestSettings.objects.get(reader=reader).frequency == "daily"


def test_a_forged_unsubscribe_token_changes_nothing(client, reader):
    subscribe(reader)
    token = digests.unsubscribe_token(reader_id=reader.pk)
    forged = f"{reader.pk + 1}:{token.split(':', 1)[1]}"

    response = client.post(f"/digest/unsubscribe/{forged}/")

    assert response.status_code == 404
    assert DigestSettings.objects.get(reader=reader).frequency == "daily"
