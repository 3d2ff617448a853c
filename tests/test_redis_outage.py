"""Redis trouble degrades, never 500s: with the cache's Redis stopped or frozen, signed-in readers keep
their session, read every page, log in and out and post comments (rate limits counted in the
database); calls to Redis fail fast behind a breaker; when Redis is back, caching resumes without a
restart and nothing written during the outage comes back stale.

Each test runs a private redis-server on a free port and stops it for real."""

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid

import pytest
import redis
from django.core.cache import cache
from django.http import HttpResponse
from django.test import Client
from django.urls import path

from comments.models import Comment, ModerationRule
from newsreader.cache import client_options, redis_outage
from stories import localpages, viewcounts
from tests.conftest import PASSWORD, require
from tests.factories import CommentFactory, ModerationRuleFactory, StoryFactory
from tests.stories.test_page_copies import wait_until

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]


class RedisServer:
    """A redis-server of the test's own, without persistence, that can be stopped, started again on
    the same port, and frozen (SIGSTOP: it accepts connections and never answers)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def private_redis(settings, monkeypatch):
    """The cache, sessions, page cache and view counts all on a private Redis; the breaker's pause short."""
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    server = RedisServer(free_port())
    server.start()
    settings.REDIS_URL = server.url
    settings.REDIS_OUTAGE_PAUSE_SECONDS = 0.5
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    settings.CACHES = {
        "default": {
            "BACKEND": "newsreader.cache.ReusingRedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": "newsreader",
            "OPTIONS": client_options(),
        }
    }
    monkeypatch.setattr(viewcounts, "_redis_client", None)
    yield server
    server.stop()
    redis_outage.reset()


def wait_out_the_breaker(settings) -> None:
    time.sleep(settings.REDIS_OUTAGE_PAUSE_SECONDS + 0.1)


def wait_until_pages_are_no_longer_copied() -> None:
    """The web process hears that Redis stopped a moment after it did: its connection for invalidations
    closes, and with it go the copies of pages it kept (stories/localpages.py)."""
    wait_until(
        lambda: not localpages.copies.listening and len(localpages.copies) == 0,
        what="the process never heard that Redis stopped",
    )


def signed_in(reader) -> Client:
    client = Client()
    client.force_login(reader)
    return client


def post_comment(client: Client, story, body: str):
    return client.post(f"/comments/{story.slug}/post/", {"body": body, "idempotency_key": str(uuid.uuid4())})


def test_a_signed_in_reader_reads_every_page_while_redis_is_stopped(private_redis, reader):
    story = StoryFactory(title="Ferries run on shore power")
    comment = CommentFactory(story=story, body_source="Good news for the harbour.")
    client = signed_in(reader)
    assert client.get("/").status_code == 200  # the session is now cached in Redis

    private_redis.stop()

    for url in ["/", story.get_absolute_url(), f"/comments/{story.slug}/", f"/comments/c/{comment.pk}/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert f"<bdi>{reader.username}</bdi>" in response.content.decode(), f"{url} shows the reader signed in"
    fragment = client.get(f"/comments/{story.slug}/thread/")
    assert fragment.status_code == 200
    assert "Good news for the harbour." in fragment.content.decode()
    assert 'name="body"' in fragment.content.decode()  # the signed-in reader's comment form
    assert client.get("/comments/my/comments/").status_code == 200


def test_a_reader_logs_in_and_out_while_redis_is_stopped(private_redis, reader):
    private_redis.stop()
    client = Client()

    logged_in = client.post("/accounts/login/", {"login": reader.email, "password": PASSWORD})

    assert logged_in.status_code == 302
    assert f"<bdi>{reader.username}</bdi>" in client.get("/").content.decode()
    assert client.post("/accounts/logout/").status_code == 302
    page = client.get("/").content.decode()
    assert f"<bdi>{reader.username}</bdi>" not in page
    assert "Log in" in page


def test_comments_post_while_redis_is_stopped_and_the_rate_limit_still_holds(private_redis, reader):
    ModerationRule.objects.all().delete()
    ModerationRuleFactory(kind=ModerationRule.Kind.RATE_LIMIT, limit=1, window_seconds=600)
    story = StoryFactory()
    client = signed_in(reader)
    private_redis.stop()

    posted = post_comment(client, story, "Written while Redis was away")
    refused = post_comment(client, story, "And a second one too soon")

    assert posted.status_code == 302
    assert Comment.objects.get(author=reader).body_source == "Written while Redis was away"
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "And a second one too soon" in refused.content.decode()  # the form keeps the reader's text
    assert Comment.objects.filter(author=reader).count() == 1


def test_the_thread_fragment_renders_uncached_while_redis_is_stopped_and_is_cached_again_once_it_is_back(
    private_redis, settings
):
    story = StoryFactory()
    CommentFactory(story=story, body_source="First!")
    url = f"/comments/{story.slug}/thread/"
    visitor = Client()
    visitor.get(url)
    assert visitor.get(url)["X-Page-Cache"] == "hit"

    private_redis.stop()
    wait_until_pages_are_no_longer_copied()
    for _ in range(2):
        response = visitor.get(url)
        assert response.status_code == 200
        assert "X-Page-Cache" not in response
        assert "First!" in response.content.decode()

    private_redis.start()  # the same port, empty
    wait_out_the_breaker(settings)
    assert "X-Page-Cache" not in visitor.get(url)  # rendered and kept again
    assert visitor.get(url)["X-Page-Cache"] == "hit"
    cache.set("newsreader:test:back", "yes")
    assert cache.get("newsreader:test:back") == "yes"


def test_a_frozen_redis_costs_one_short_timeout_then_is_skipped(private_redis, reader, settings):
    settings.REDIS_OUTAGE_PAUSE_SECONDS = 30  # no retry within the test: only the first call waits
    story = StoryFactory()
    client = signed_in(reader)
    client.get("/")

    private_redis.freeze()
    started = time.monotonic()
    first = client.get(story.get_absolute_url())
    first_took = time.monotonic() - started
    started = time.monotonic()
    for _ in range(10):
        assert client.get(story.get_absolute_url()).status_code == 200
    ten_took = time.monotonic() - started

    assert first.status_code == 200
    assert f"<bdi>{reader.username}</bdi>" in first.content.decode()
    assert first_took < settings.REDIS_TIMEOUT_SECONDS + 1.5
    # Without the breaker, each page would wait out the read timeout on every cache call.
    assert ten_took < 10 * settings.REDIS_TIMEOUT_SECONDS / 2
    assert redis_outage.is_open


def test_logging_out_while_redis_is_frozen_is_not_undone_when_it_answers_again(private_redis, reader, settings):
    client = signed_in(reader)
    assert f"<bdi>{reader.username}</bdi>" in client.get("/").content.decode()  # the session is cached in Redis
    stolen_cookie = client.cookies[settings.SESSION_COOKIE_NAME].value

    private_redis.freeze()  # Redis keeps its data, and the cached session in it
    assert client.post("/accounts/logout/").status_code == 302
    private_redis.thaw()
    wait_out_the_breaker(settings)

    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = stolen_cookie
    page = replay.get("/").content.decode()
    assert f"<bdi>{reader.username}</bdi>" not in page
    assert "Log in" in page


def needs_redis(request):
    redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2).ping()
    return HttpResponse("unreachable")


def fails(request):
    raise RuntimeError("a bug")


urlpatterns = [path("needs-redis/", needs_redis), path("fails/", fails)]


@pytest.mark.urls("tests.test_redis_outage")
def test_a_view_that_finds_redis_unreachable_answers_503_with_retry_after_and_a_bug_the_500_page():
    client = Client(raise_request_exception=False)

    unavailable = client.get("/needs-redis/")
    error = client.get("/fails/")

    assert unavailable.status_code == 503
    assert int(unavailable["Retry-After"]) > 0
    assert "Back in a moment" in unavailable.content.decode()
    assert error.status_code == 500
    assert "Something went wrong" in error.content.decode()
