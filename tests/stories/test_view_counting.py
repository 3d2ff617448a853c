"""Views are counted once per reader per story per day, without a database write per request."""

import pytest
from django.test import Client

from stories import localpages, viewcounts
from stories.models import Story
from stories.tasks import flush_story_views
from tests.factories import StoryFactory

pytestmark = pytest.mark.django_db


def view_count(story: Story) -> int:
    return Story.objects.get(pk=story.pk).view_count


def visitor(address: str) -> Client:
    return Client(REMOTE_ADDR=address, HTTP_USER_AGENT="test browser")


def test_redis_counts_once_per_reader_per_day_and_flush_writes_them(redis_client, django_assert_num_queries):
    story = StoryFactory()
    first, second = visitor("192.0.2.1"), visitor("192.0.2.2")

    first.get(story.get_absolute_url())
    first.get(story.get_absolute_url())
    second.get(story.get_absolute_url())

    assert view_count(story) == 0  # nothing written on the request path
    localpages.send_views()  # the views of hits on this process's copy, sent within a second
    assert flush_story_views() == 2
    assert view_count(story) == 2
    assert flush_story_views() == 0
    assert view_count(story) == 2


def test_cached_page_hits_are_counted_too(redis_client, settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    story = StoryFactory()

    visitor("192.0.2.1").get(story.get_absolute_url())
    response = visitor("192.0.2.9").get(story.get_absolute_url())

    assert response["X-Page-Cache"] == "hit"
    localpages.send_views()
    flush_story_views()
    assert view_count(story) == 2


def test_a_flush_that_died_half_way_is_finished_by_the_next(redis_client):
    story = StoryFactory()
    redis_client.hset(viewcounts.FLUSHING_KEY, story.pk, 5)
    viewcounts.record_view(story_id=story.pk, reader="someone")

    assert flush_story_views() == 5  # the stranded batch first
    assert flush_story_views() == 1  # then what came after
    assert view_count(story) == 6


def test_redis_going_away_does_not_break_the_story_page(redis_client, monkeypatch):
    import redis

    story = StoryFactory()
    monkeypatch.setattr(viewcounts, "_redis_client", redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2))

    response = visitor("192.0.2.1").get(story.get_absolute_url())

    assert response.status_code == 200


def test_without_redis_the_first_view_of_the_day_is_written_directly(settings, monkeypatch):
    settings.REDIS_URL = ""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    monkeypatch.setattr(viewcounts, "_redis_client", None)
    story = StoryFactory()

    visitor("192.0.2.1").get(story.get_absolute_url())
    visitor("192.0.2.1").get(story.get_absolute_url())
    visitor("192.0.2.2").get(story.get_absolute_url())

    assert view_count(story) == 2


def test_reader_key_holds_no_address_in_clear(rf):
    request = rf.get("/", REMOTE_ADDR="203.0.113.77")
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    key = viewcounts.reader_key(request)

    assert "203.0.113.77" not in key
    assert len(key) == 24
