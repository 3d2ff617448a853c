"""The pipeline through real Celery processes on Redis: a worker killed mid-import, twice, and a queue
emptied under waiting stories both end with every entry stored once and every story through its steps."""

import time
from collections.abc import Iterator
from datetime import timedelta
from email.utils import format_datetime

import pytest
from django.db import connection
from django.utils import timezone

from stories import pipeline
from stories.models import Heartbeat, ImportRun, Source, Story
from tests.conftest import require
from tests.factories import SourceFactory, StoryFactory
from tests.httpserver import Reply
from tests.processes import CeleryProcess

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ENTRIES = 40
LEASE_SECONDS = 4
# Short leases, retries and sweeps, so a fault costs seconds here instead of a minute or two.
FAST_PIPELINE = {
    "PIPELINE_LEASE_SECONDS": str(LEASE_SECONDS),
    "PIPELINE_RETRY_SECONDS": "2",
    "PIPELINE_SWEEP_SECONDS": "1",
    "LABELLER": "embedded",
}


def feed_bytes(prefix: str = "") -> bytes:
    items = "".join(
        f"<item><title>Story {prefix}{n}</title><link>https://ledger.example.org/{prefix}{n}</link>"
        f"<guid>g-{prefix}{n}</guid>"
        f"<pubDate>{format_datetime(timezone.now() - timedelta(minutes=n), usegmt=True)}</pubDate>"
        f"<description>Text {n} of the story about the harbour and its ferries.</description></item>"
        for n in range(ENTRIES)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{items}</channel></rss>'.encode()


@pytest.fixture
def processes(redis_client, tmp_path) -> Iterator[dict[str, CeleryProcess]]:
    require(connection.vendor == "postgresql", "worker tests need PostgreSQL (set DATABASE_URL)")
    redis_client.flushdb()
    started = {
        "worker": CeleryProcess("worker", log=tmp_path / "worker.log", environment=FAST_PIPELINE),
        "beat": CeleryProcess(
            "beat", log=tmp_path / "beat.log", environment=FAST_PIPELINE, args=["-s", str(tmp_path / "beat-schedule")]
        ),
    }
    yield started
    for process in started.values():
        process.stop()


def wait_for(condition, *, seconds: float, what: str, processes=None) -> float:
    """Wait until `condition()` holds; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if condition():
            return time.monotonic() - start
        time.sleep(0.2)
    logs = "\n".join(f"--- {name}\n{p.log_tail()}" for name, p in (processes or {}).items())
    pytest.fail(f"timed out after {seconds} s waiting for {what}\n{logs}")


def all_done(sources: list[Source]) -> bool:
    stories = Story.objects.filter(source__in=sources)
    return stories.count() == ENTRIES * len(sources) and not stories.in_pipeline().exists()


def test_worker_imports_a_source_asked_for_in_the_admin_and_takes_its_stories_through_every_step(
    processes, http_server
):
    http_server.route("/feed.xml", Reply(body=feed_bytes(), headers={"Content-Type": "application/rss+xml"}))
    source = SourceFactory(feed_url=http_server.url("/feed.xml"))
    processes["worker"].start()

    pipeline.request_import(source=source)

    wait_for(lambda: all_done([source]), seconds=90, what="the import and every step", processes=processes)
    run = ImportRun.objects.get(source=source)
    assert (run.outcome, run.new_count) == (ImportRun.Outcome.IMPORTED, ENTRIES)
    story = Story.objects.filter(source=source).first()
    assert story.ai_labelled
    assert story.pipeline_state == Story.PipelineState.ILLUSTRATED
    assert set(story.pipeline_steps) == {"label", "image"}
    assert story.pipeline_steps["label"]["outcome"] == "done"
    assert Heartbeat.objects.filter(kind=Heartbeat.Kind.WORKER, started_at__isnull=False).exists()


def test_a_worker_killed_mid_import_twice_loses_nothing_and_duplicates_nothing(processes, http_server):
    fetches: list[str] = []

    def slow_feed(request):
        fetches.append(request.path)
        return Reply(body=feed_bytes(request.path), headers={"Content-Type": "application/rss+xml"}, delay=1.5)

    sources = []
    for n in range(3):
        http_server.route(f"/feed-{n}.xml", slow_feed)
        sources.append(SourceFactory(feed_url=http_server.url(f"/feed-{n}.xml")))
    worker, beat = processes["worker"].start(), processes["beat"].start()
    for source in sources:
        pipeline.request_import(source=source)

    for _ in range(2):
        seen = len(fetches)
        wait_for(lambda seen=seen: len(fetches) > seen, seconds=60, what="an import in progress", processes=processes)
        worker.kill()
        worker.start()
    last_fault = time.monotonic()

    wait_for(lambda: all_done(sources), seconds=90, what="every source and story", processes=processes)
    recovered_in = time.monotonic() - last_fault

    for source in sources:
        keys = list(Story.objects.filter(source=source).values_list("entry_key", flat=True))
        assert len(keys) == len(set(keys)) == ENTRIES
    # The killed imports' runs were closed with the reason once their leases lapsed.
    wait_for(lambda: not ImportRun.objects.running().exists(), seconds=LEASE_SECONDS + 10, what="no run left running")
    interrupted = ImportRun.objects.filter(outcome=ImportRun.Outcome.INTERRUPTED)
    assert interrupted.count() == 2
    assert all("lease lapsed" in run.error for run in interrupted)
    assert ImportRun.objects.filter(outcome=ImportRun.Outcome.IMPORTED).count() == len(sources)
    # Within a lease and a sweep of the fault, plus the imports and labelling themselves.
    assert recovered_in < 60, recovered_in
    assert beat.running
    assert Heartbeat.objects.filter(
        kind=Heartbeat.Kind.BEAT, seen_at__gte=timezone.now() - timedelta(seconds=10)
    ).exists()


def test_the_sweep_finishes_stories_whose_queued_steps_were_lost(processes, http_server, redis_client):
    article = "".join(f"<p>Sentence {n} of the whole article about the harbour's new ferries.</p>" for n in range(30))
    http_server.route(
        "/article",
        Reply(
            body=f"<html><body><article>{article}</article></body></html>".encode(),
            headers={"Content-Type": "text/html"},
        ),
    )
    extracting = SourceFactory(full_text=True)
    waiting_for_full_text = StoryFactory(
        source=extracting, original_url=http_server.url("/article"), body_html="<p>Short.</p>"
    )
    waiting_for_labels = StoryFactory(title="Ferries return to the harbour")
    waiting_for_a_picture = StoryFactory(title="A new quay opens")
    states = {
        waiting_for_full_text: Story.PipelineState.IMPORTED,
        waiting_for_labels: Story.PipelineState.FULL_TEXT,
        waiting_for_a_picture: Story.PipelineState.LABELLED,
    }
    for story, state in states.items():
        pipeline.resume_after(state, [story.pk])
    assert redis_client.llen("celery") == 3

    redis_client.flushdb()  # the queue is lost: a Redis restart without persistence
    processes["worker"].start()
    processes["beat"].start()

    stories = Story.objects.filter(pk__in=[story.pk for story in states])
    wait_for(
        lambda: not stories.in_pipeline().exists(), seconds=90, what="the sweep to finish them", processes=processes
    )
    waiting_for_full_text.refresh_from_db()
    assert "Sentence 29 of the whole article" in waiting_for_full_text.body_html
    assert waiting_for_full_text.ai_labelled
    waiting_for_labels.refresh_from_db()
    assert waiting_for_labels.ai_labelled
    assert Story.objects.get(pk=waiting_for_a_picture.pk).image_record.state != "pending"


def test_a_worker_stopped_for_a_deploy_finishes_the_import_in_hand(processes, http_server):
    fetched = []

    def slow_feed(request):
        fetched.append(time.monotonic())
        return Reply(body=feed_bytes(), headers={"Content-Type": "application/rss+xml"}, delay=2)

    http_server.route("/feed.xml", slow_feed)
    source = SourceFactory(feed_url=http_server.url("/feed.xml"))
    worker = processes["worker"].start()
    pipeline.request_import(source=source)
    wait_for(lambda: fetched, seconds=60, what="the import to start", processes=processes)

    worker.stop()  # SIGTERM while the feed is still downloading

    assert not worker.running
    run = ImportRun.objects.get(source=source)
    assert run.outcome == ImportRun.Outcome.IMPORTED
    assert Story.objects.filter(source=source).count() == ENTRIES
