"""Fixtures shared by the whole suite."""

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from comments import services as comment_services
from comments import views as comment_views
from newsreader import personal
from newsreader.cache import redis_outage
from stories import articles, localpages, pagecache, viewcounts

IN_CI = os.environ.get("CI", "").lower() == "true"
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
PASSWORD = "correct horse battery staple"


def view_count_queries() -> int:
    """Queries a story page spends counting its view: none with Redis (views are counted there and written
    in batches), one without (straight into the database)."""
    return 0 if settings.REDIS_URL else 1


def require(condition: bool, reason: str) -> None:
    """Skip when a service or data set is missing, except in CI, where that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: nothing may skip for a missing service or data)")
    pytest.skip(reason)


def shared_data(relative: str) -> Path:
    path = SHARED_DATA / relative
    require(path.exists(), f"shared data {path} is not present")
    return path


@pytest.fixture
def redis_client():
    require(bool(settings.REDIS_URL), "REDIS_URL is not set")
    client = viewcounts.redis_client()
    client.ping()
    return client


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with an empty cache and Redis presumed up: rate limits, cached pages, view marks
    and an outage from earlier tests must not leak in."""
    redis_outage.reset()
    cache.clear()
    personal.forget_everything_kept()
    articles.forget_kept_articles()
    comment_views.forget_kept_threads()
    localpages.forget_everything()
    comment_services.forget_queued_reply_mail()
    yield
    cache.clear()
    localpages.forget_everything()


@pytest.fixture(autouse=True)
def pages_invalidated_as_outside_tests(monkeypatch):
    """A test runs inside a transaction of its own that never commits: the page cache, which invalidates
    after a commit, looks only at the transactions the code under test opened."""
    from django.db import connection

    def in_transaction() -> bool:
        return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)

    monkeypatch.setattr(pagecache, "in_transaction", in_transaction)


@pytest.fixture
def reader(db):
    from tests.factories import UserFactory

    return UserFactory()


from tests.httpserver import http_server  # noqa: E402, F401  (a fixture every test module may use)
