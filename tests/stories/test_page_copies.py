"""Each web process keeps copies of the visitors' cached pages and answers hits from them without asking
Redis, for as long as it hears every invalidation (stories/localpages.py)."""

import time

import pytest
import redis
from django.test import Client

from stories import localpages, pagecache, viewcounts
from stories.models import Story
from tests.factories import StoryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def page_copies_on(settings, redis_client):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    settings.PAGE_COPIES_PER_PROCESS = 500


def visitor() -> Client:
    return Client(REMOTE_ADDR="192.0.2.1", HTTP_USER_AGENT="test browser")


def wait_until(condition, *, what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def copied_story_page(title: str = "Ferry timetable changes") -> tuple[Story, bytes]:
    story = StoryFactory(title=title)
    rendered = visitor().get(story.get_absolute_url())
    wait_until(lambda: localpages.copies.listening, what="the process never started hearing invalidations")
    assert visitor().get(story.get_absolute_url())["X-Page-Cache"] == "hit"  # found in Redis: copied
    assert len(localpages.copies) == 1
    return story, rendered.content


def without_redis(monkeypatch) -> None:
    """Every Redis command of the request path fails from here on (the listener's connection stays)."""
    monkeypatch.setattr(viewcounts, "_redis_client", redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2))


def changed_by_another_process(story: Story, *, title: str, announced: bool = True) -> None:
    """What a worker process's change does: the row, the generation, and the announcement (or not)."""
    Story.objects.filter(pk=story.pk).update(title=title)
    pipeline = viewcounts.redis_client().pipeline(transaction=False)
    pipeline.incr(pagecache.GENERATION_KEY_PREFIX + pagecache.story_scope(story.slug))
    if announced:
        localpages.queue_announcement(pipeline, [pagecache.story_scope(story.slug)])
    pipeline.execute()


def test_a_hit_on_a_copied_page_asks_nothing_of_redis(monkeypatch, django_assert_num_queries):
    story, rendered = copied_story_page()
    without_redis(monkeypatch)

    with django_assert_num_queries(0):
        hit = visitor().get(story.get_absolute_url())

    assert hit["X-Page-Cache"] == "hit"
    assert hit.content == rendered


def test_a_change_announced_by_another_process_drops_the_copy():
    story, _ = copied_story_page("Ferry timetable changes")

    changed_by_another_process(story, title="Ferry timetable changes again")
    wait_until(lambda: len(localpages.copies) == 0, what="the announcement never dropped the copy")

    response = visitor().get(story.get_absolute_url())
    assert "X-Page-Cache" not in response
    assert b"Ferry timetable changes again" in response.content


def test_a_change_in_this_process_drops_its_copy_at_once():
    story, _ = copied_story_page()

    pagecache.story_discussion_changed(story.slug)

    assert len(localpages.copies) == 0
    assert "X-Page-Cache" not in visitor().get(story.get_absolute_url())


def test_no_copy_outlives_a_lost_connection_whatever_was_missed_meanwhile(redis_client):
    story, _ = copied_story_page("Bridge closes for repairs")
    (listener,) = [client for client in redis_client.client_list() if client["name"] == localpages.listener_name()]

    redis_client.client_kill_filter(_id=listener["id"])
    # A change whose announcement the process cannot hear: it was not listening.
    changed_by_another_process(story, title="Bridge reopens early", announced=False)
    wait_until(lambda: len(localpages.copies) == 0, what="the lost connection never dropped the copies")

    assert b"Bridge reopens early" in visitor().get(story.get_absolute_url()).content
    wait_until(lambda: localpages.copies.listening, what="the listener never came back")


def test_a_page_changed_while_it_was_looked_up_is_not_copied(monkeypatch):
    story = StoryFactory()
    visitor().get(story.get_absolute_url())
    wait_until(lambda: localpages.copies.listening, what="the process never started hearing invalidations")
    localpages.copies.drop_all()  # as in a process that has not copied it yet
    fetch = pagecache._fetch

    def fetch_as_a_change_is_announced(*args, **kwargs):
        found = fetch(*args, **kwargs)
        localpages.copies.drop([pagecache.story_scope(story.slug)])
        return found

    monkeypatch.setattr(pagecache, "_fetch", fetch_as_a_change_is_announced)

    assert visitor().get(story.get_absolute_url())["X-Page-Cache"] == "hit"
    assert len(localpages.copies) == 0


def test_a_copy_expires_with_the_page_it_copies(settings, monkeypatch):
    settings.LIST_PAGE_CACHE_SECONDS = 30
    StoryFactory()
    visitor().get("/")
    wait_until(lambda: localpages.copies.listening, what="the process never started hearing invalidations")
    assert visitor().get("/")["X-Page-Cache"] == "hit"
    assert visitor().get("/")["X-Page-Cache"] == "hit"  # from the copy
    without_redis(monkeypatch)
    later = time.time() + 31
    monkeypatch.setattr(localpages.time, "time", lambda: later)

    response = visitor().get("/")

    assert "X-Page-Cache" not in response
    assert len(localpages.copies) == 0


def test_the_least_recently_answered_copies_go_first():
    copies = localpages.LocalCopies(limit=2)
    copies.listening = True
    page = pagecache.CachedPage({"site": 1}, b"page", (), None, expires_at=time.time() + 60)
    for key in ("first", "second"):
        copies.keep(key, page, mark=copies.mark())

    copies.get("first")
    copies.keep("third", page, mark=copies.mark())

    assert [key for key in ("first", "second", "third") if copies.get(key)] == ["first", "third"]


def test_nothing_is_copied_or_answered_while_the_process_is_not_listening():
    copies = localpages.LocalCopies(limit=10)
    page = pagecache.CachedPage({"site": 1}, b"page", (), None, expires_at=time.time() + 60)
    copies.keep("page", page, mark=copies.mark())
    assert copies.get("page") is None

    copies.listening = True
    copies.keep("page", page, mark=copies.mark())
    copies.listening = False
    assert copies.get("page") is None
