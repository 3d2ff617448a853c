"""The admin's system status: a plain verdict first, then processes, queue, backlog and failures."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from stories import status
from stories.models import Heartbeat, ImportRun, Source, Story
from tests.factories import SourceFactory, StoryFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/admin/status/"


def alive(**ages) -> None:
    now = timezone.now()
    Heartbeat.objects.create(name="worker@web1", kind="worker", seen_at=now - ages.get("worker", timedelta(0)))
    Heartbeat.objects.create(name="beat", kind="beat", seen_at=now - ages.get("beat", timedelta(0)))


def test_staff_see_all_running_when_every_part_reports(admin_client):
    alive()

    html = admin_client.get(URL).content.decode()

    assert "All running" in html
    assert "worker@web1" in html
    assert "messages waiting in the queue" in html


def test_a_silent_beat_is_named_in_plain_words(admin_client):
    alive(beat=timedelta(minutes=7))

    response = admin_client.get(URL)

    assert "Beat has not run for 7\xa0minutes" in response.content.decode()
    assert "no-store" in response["Cache-Control"]


def test_no_worker_is_reported():
    Heartbeat.objects.create(name="beat", kind="beat", seen_at=timezone.now())
    Heartbeat.objects.create(name="old", kind="worker", seen_at=timezone.now() - timedelta(minutes=10))

    assert status.system_status().verdict == "No worker has been seen for 10\xa0minutes."


def test_stories_waiting_long_after_a_step_are_reported_with_the_backlog(admin_client):
    alive()
    story = StoryFactory()
    Story.objects.filter(pk=story.pk).resume_pipeline_after(Story.PipelineState.FULL_TEXT)
    Story.objects.filter(pk=story.pk).update(pipeline_due_at=timezone.now() - timedelta(minutes=30))

    current = status.system_status()

    assert [(step.state, step.waiting) for step in current.backlog] == [("full_text", 1)]
    assert current.verdict.startswith("Stories have waited after “Full text extracted” for 30")


def test_failing_sources_and_interrupted_imports_are_listed(admin_client):
    alive()
    source = SourceFactory(name="Harbour Ledger")
    Source.objects.filter(pk=source.pk).update(consecutive_errors=4, last_error="HTTP 503 from the publisher")
    ImportRun.objects.create(source=source, outcome=ImportRun.Outcome.INTERRUPTED, error="The lease lapsed.")

    html = admin_client.get(URL).content.decode()

    assert "Some sources are failing" in html
    assert "HTTP 503 from the publisher" in html
    assert "The lease lapsed." in html


def test_readers_cannot_see_the_status(client):
    client.force_login(UserFactory())

    response = client.get(URL)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_page_costs_the_same_queries_whatever_the_backlog(admin_client, django_assert_max_num_queries):
    alive()
    for _ in range(5):
        story = StoryFactory()
        Story.objects.filter(pk=story.pk).resume_pipeline_after(Story.PipelineState.IMPORTED)
        source = SourceFactory()
        Source.objects.filter(pk=source.pk).update(consecutive_errors=1)
        ImportRun.objects.create(source=source, outcome=ImportRun.Outcome.FAILED, error="No.")

    with django_assert_max_num_queries(12):
        assert admin_client.get(URL).status_code == 200


def test_the_page_cache_hit_rate_counts_visitors_requests(admin_client, settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    alive()
    story = StoryFactory()
    before = status.system_status().page_cache_lookups
    visitor = Client(HTTP_USER_AGENT="test browser")

    for _ in range(4):
        visitor.get(story.get_absolute_url())

    after = status.system_status().page_cache_lookups
    assert after.get("miss", 0) - before.get("miss", 0) == 1
    assert after.get("hit", 0) - before.get("hit", 0) == 3
    assert "% of cacheable pages came from the cache" in admin_client.get(URL).content.decode()
