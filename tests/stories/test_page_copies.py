"""Each web process keeps copies of the visitors' cached pages and answers hits from them without asking
Redis, for as long as it hears every invalidation (stories/localpages.py)."""

import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client

from bench import _harness
from stories import localpages, pagecache, viewcounts
from stories.models import Story
from tests.conftest import require
from tests.factories import StoryFactory
from tests.processes import database_url

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


def close_subscriptions(redis_client) -> None:
    """Close this process's connections subscribed to page invalidations, as Redis going away would (one
    stopped a moment ago, when the process was to listen to another Redis, may not have closed yet)."""
    listeners = [client for client in redis_client.client_list() if client["name"] == localpages.listener_name()]
    assert listeners, "this process is not subscribed"
    for listener in listeners:
        redis_client.client_kill_filter(_id=listener["id"])


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

    close_subscriptions(redis_client)
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


@contextmanager
def gunicorn_with_two_workers(tmp_path: Path) -> Iterator[str]:
    """The production server on this test's database and Redis; yields its address once it answers."""
    environment = {
        **os.environ,
        "DEBUG": "true",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "VISITOR_PAGE_CACHE_SECONDS": "60",
        "NEWSREADER_VAR_DIR": str(tmp_path / "var"),
    }
    with _harness.Server(
        app="newsreader.wsgi:application",
        environment=environment,
        log_path=tmp_path / "gunicorn.log",
        workers=2,
        worker_class="sync",
        threads=1,
        ready_path="/healthz",
    ) as server:
        yield f"http://{_harness.HOST}:{server.port}"


def titles_seen(address: str, path: str, *, requests: int = 200) -> Counter:
    """What many visitors at once are answered, spread over both workers."""
    pattern = re.compile(rb"<h1[^>]*>(.*?)</h1>", re.S)

    def title() -> bytes:
        response = httpx.get(address + path, timeout=10)
        assert response.status_code == 200
        return pattern.search(response.content).group(1).strip()

    with ThreadPoolExecutor(max_workers=8) as pool:
        return Counter(pool.map(lambda _: title(), range(requests)))


@pytest.mark.django_db(transaction=True)  # the server's processes read what the test commits
def test_a_change_made_in_any_process_reaches_the_copies_kept_by_every_web_process(tmp_path):
    require(connection.vendor == "postgresql", "the server's processes need a database they can share")
    story = StoryFactory(title="Harbour crane stands idle")

    with gunicorn_with_two_workers(tmp_path) as address:
        assert titles_seen(address, story.get_absolute_url()) == {b"Harbour crane stands idle": 200}

        story.title = "Harbour crane back at work"
        story.save()  # in this process, as a worker's import or a moderator's edit would be made

        deadline = time.monotonic() + 5
        while (seen := titles_seen(address, story.get_absolute_url(), requests=40)) != {
            b"Harbour crane back at work": 40
        }:
            assert time.monotonic() < deadline, f"web processes still answer the old page: {seen}"
        # Heard once, the change holds: no process answers its old copy again.
        assert titles_seen(address, story.get_absolute_url()) == {b"Harbour crane back at work": 200}
