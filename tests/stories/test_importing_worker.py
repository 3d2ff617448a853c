"""Imports through a real Celery worker process on Redis, including a worker killed mid-import."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from stories.importing import service
from stories.models import ImportRun, Story
from tests.conftest import require
from tests.factories import SourceFactory
from tests.httpserver import Reply

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PROJECT = Path(__file__).resolve().parents[2]
ENTRIES = 40
# Short broker visibility so a message a killed worker held comes back within the test.
VISIBILITY_SECONDS = 6


def feed_bytes() -> bytes:
    items = "".join(
        f"<item><title>Story {n}</title><link>https://ledger.example.org/{n}</link><guid>g-{n}</guid>"
        f"<pubDate>{format_datetime(timezone.now() - timedelta(minutes=n), usegmt=True)}</pubDate>"
        f"<description>Text {n} of the story.</description></item>"
        for n in range(ENTRIES)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{items}</channel></rss>'.encode()


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """A `celery worker` process of this project, pointed at the test database."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "DEBUG": "true",
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "FETCH_ALLOWED_NETWORKS": "127.0.0.1/32",
            "CELERY_TASK_TIME_LIMIT": str(VISIBILITY_SECONDS - 2),
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_SECONDS),
        }
        command = [sys.executable, "-m", "celery", "-A", "newsreader", "worker", "--pool", "solo", "--loglevel", "INFO"]
        command += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
        self.process = subprocess.Popen(
            command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker(redis_client) -> Iterator[Worker]:
    require(connection.vendor == "postgresql", "worker tests need PostgreSQL (set DATABASE_URL)")
    redis_client.flushdb()
    worker = Worker()
    yield worker
    worker.stop()


def wait_for(condition, *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


def test_worker_imports_a_source_queued_from_the_admin_action(worker, http_server):
    http_server.route("/feed.xml", Reply(body=feed_bytes(), headers={"Content-Type": "application/rss+xml"}))
    source = SourceFactory(feed_url=http_server.url("/feed.xml"))
    worker.start()

    service.enqueue_import(source=source)

    wait_for(lambda: Story.objects.filter(source=source).count() == ENTRIES, seconds=60, what="the import")
    run = ImportRun.objects.get(source=source)
    assert run.outcome == ImportRun.Outcome.IMPORTED
    assert run.new_count == ENTRIES


def test_worker_killed_mid_import_ends_with_every_entry_imported_once(worker, http_server):
    requests_seen = []

    def slow_feed(request):
        requests_seen.append(time.monotonic())
        # The first delivery hangs long enough for the worker to be killed while it holds the task.
        return Reply(
            body=feed_bytes(),
            headers={"Content-Type": "application/rss+xml"},
            delay=3 if len(requests_seen) == 1 else 0,
        )

    http_server.route("/feed.xml", slow_feed)
    source = SourceFactory(feed_url=http_server.url("/feed.xml"))
    worker.start()
    service.enqueue_import(source=source)
    wait_for(lambda: requests_seen, seconds=60, what="the worker to start the import")

    worker.kill()
    assert not Story.objects.filter(source=source).exists()
    # Restart once the task's visibility timeout has passed: the new worker's first sweep hands
    # the unacknowledged task back, and the dead worker's lock on the source (which lapses with
    # the task time limit, shorter than the visibility timeout) no longer turns it away.
    time.sleep(VISIBILITY_SECONDS + 1)
    worker.start()

    wait_for(
        lambda: Story.objects.filter(source=source).count() == ENTRIES,
        seconds=VISIBILITY_SECONDS * 6,
        what="the redelivered import",
    )
    time.sleep(1)
    assert Story.objects.filter(source=source).count() == ENTRIES
    assert len(set(Story.objects.filter(source=source).values_list("entry_key", flat=True))) == ENTRIES
