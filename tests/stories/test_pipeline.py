"""The pipeline's rules, step by step in this process: order, claims, retries, leases and the sweep."""

from datetime import timedelta

import pytest
from django.utils import timezone

from stories import pipeline
from stories.importing import service
from stories.models import HostSlot, ImportRun, Source, Story
from tests.factories import SourceFactory, StoryFactory
from tests.httpserver import Reply

pytestmark = pytest.mark.django_db

State = Story.PipelineState


def story_waiting_after(state: str, **fields) -> Story:
    story = StoryFactory(**fields)
    Story.objects.filter(pk=story.pk).resume_pipeline_after(state)
    return Story.objects.get(pk=story.pk)


def run_to_the_end(story: Story, limit: int = 10) -> list[str]:
    states = []
    for _ in range(limit):
        state = pipeline.advance_story(story_id=story.pk)
        if state is None:
            break
        states.append(state)
    return states


def test_an_imported_story_of_a_full_text_source_is_extracted_labelled_then_illustrated(http_server):
    http_server.route("/a", Reply(body=b"<html><body><p>Short page.</p></body></html>"))
    story = story_waiting_after(
        State.IMPORTED, source=SourceFactory(full_text=True), original_url=http_server.url("/a")
    )

    assert run_to_the_end(story) == [State.FULL_TEXT, State.LABELLED, State.ILLUSTRATED]

    story.refresh_from_db()
    assert story.pipeline_due_at is None
    assert story.ai_labelled
    assert set(story.pipeline_steps) == {"full_text", "label", "image"}
    assert all(step["outcome"] == "done" for step in story.pipeline_steps.values())


def test_a_story_of_a_feed_only_source_skips_extraction():
    story = story_waiting_after(State.IMPORTED)

    assert run_to_the_end(story) == [State.LABELLED, State.ILLUSTRATED]


def test_each_finished_step_queues_the_next(django_capture_on_commit_callbacks):
    story = story_waiting_after(State.FULL_TEXT)

    with django_capture_on_commit_callbacks() as callbacks:
        pipeline.advance_story(story_id=story.pk)

    # Besides invalidating the pages that show the story, once the step's writes commit.
    sends = [callback for callback in callbacks if callback.__qualname__ == "_send.<locals>.send"]
    assert len(sends) == 1


def test_a_step_a_live_worker_holds_is_not_run_again():
    story = story_waiting_after(State.FULL_TEXT)
    claim = pipeline._take(story.pk)
    assert claim is not None

    assert pipeline.advance_story(story_id=story.pk) is None

    story.refresh_from_db()
    assert not story.ai_labelled
    assert story.pipeline_attempts == 1


def test_a_step_whose_worker_died_is_freed_by_the_sweep_and_runs_again(django_capture_on_commit_callbacks):
    story = story_waiting_after(State.FULL_TEXT)
    pipeline._take(story.pk)
    Story.objects.filter(pk=story.pk).update(pipeline_due_at=timezone.now() - timedelta(seconds=1))

    with django_capture_on_commit_callbacks() as callbacks:
        report = pipeline.sweep()

    assert report.stories_queued == 1
    assert len(callbacks) == report.sources_queued + 1
    assert pipeline.advance_story(story_id=story.pk) == State.LABELLED


def test_a_finished_step_of_a_voided_claim_does_not_move_the_story(http_server):
    story = story_waiting_after(State.FULL_TEXT)
    claim = pipeline._take(story.pk)
    # The source updated the entry while the step ran: the story starts again from "imported".
    Story.objects.filter(pk=story.pk).resume_pipeline_after(State.IMPORTED)

    pipeline._move_on(claim)

    story.refresh_from_db()
    assert story.pipeline_state == State.IMPORTED


def test_a_failing_step_is_retried_later_then_given_up_with_the_reason(monkeypatch, settings):
    settings.PIPELINE_MAX_ATTEMPTS = 2

    def broken(story_id):
        raise RuntimeError("the labeller's model file is unreadable")

    monkeypatch.setattr(pipeline, "LABEL", pipeline.Step("label", "labelling", broken, State.LABELLED, lambda: 60))
    story = story_waiting_after(State.FULL_TEXT)

    assert pipeline.advance_story(story_id=story.pk) is None
    story.refresh_from_db()
    assert story.pipeline_state == State.FULL_TEXT
    assert story.pipeline_due_at > timezone.now() + timedelta(seconds=settings.PIPELINE_RETRY_SECONDS - 5)
    assert "unreadable" in story.pipeline_error

    Story.objects.filter(pk=story.pk).update(pipeline_due_at=timezone.now())
    assert pipeline.advance_story(story_id=story.pk) == State.LABELLED
    story.refresh_from_db()
    assert "Gave up after 2 tries" in story.pipeline_error
    assert story.pipeline_steps["label"]["outcome"] == "gave up"


def test_a_step_that_kills_its_worker_every_time_is_given_up(settings):
    settings.PIPELINE_MAX_ATTEMPTS = 3
    story = story_waiting_after(State.FULL_TEXT)
    Story.objects.filter(pk=story.pk).update(pipeline_attempts=3)

    assert pipeline.advance_story(story_id=story.pk) == State.LABELLED

    story.refresh_from_db()
    assert "never finished" in story.pipeline_error
    assert not story.ai_labelled


def test_the_sweep_leaves_stories_that_are_not_overdue_alone(django_capture_on_commit_callbacks):
    story_waiting_after(State.FULL_TEXT)
    StoryFactory()  # done

    with django_capture_on_commit_callbacks() as callbacks:
        report = pipeline.sweep()

    assert report.stories_queued == 0
    assert len(callbacks) == report.sources_queued


def test_the_sweep_reads_a_bounded_batch_in_a_fixed_number_of_queries(
    django_assert_num_queries, django_capture_on_commit_callbacks
):
    for _ in range(5):
        story_waiting_after(State.FULL_TEXT)
    Story.objects.update(pipeline_due_at=timezone.now() - timedelta(minutes=1))

    with django_capture_on_commit_callbacks(), django_assert_num_queries(5):
        report = pipeline.sweep(batch=3)

    assert report.stories_queued == 3


def test_the_sweep_closes_runs_whose_worker_died_and_queues_their_source_again(django_capture_on_commit_callbacks):
    source = SourceFactory(next_fetch_at=timezone.now() - timedelta(minutes=5))
    Source.objects.filter(pk=source.pk).update(import_locked_until=timezone.now() - timedelta(seconds=1))
    run = ImportRun.objects.create(source=source)

    with django_capture_on_commit_callbacks() as callbacks:
        report = pipeline.sweep()

    run.refresh_from_db()
    assert run.outcome == ImportRun.Outcome.INTERRUPTED
    assert "lease lapsed" in run.error
    assert (report.interrupted_runs, report.sources_queued) == (1, 1)
    assert len(callbacks) == 1


def test_a_run_with_a_live_lease_is_left_running():
    source = SourceFactory()
    Source.objects.filter(pk=source.pk).update(import_locked_until=timezone.now() + timedelta(seconds=60))
    run = ImportRun.objects.create(source=source)

    assert pipeline.sweep().interrupted_runs == 0
    run.refresh_from_db()
    assert run.outcome == ImportRun.Outcome.RUNNING


def test_import_now_takes_over_a_source_whose_lease_lapsed(http_server, django_capture_on_commit_callbacks):
    http_server.route(
        "/feed.xml",
        Reply(
            body=b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item><title>One</title>'
            b"<link>https://example.org/1</link><guid>1</guid><description>Text.</description></item>"
            b"</channel></rss>",
            headers={"Content-Type": "application/rss+xml"},
        ),
    )
    source = SourceFactory(feed_url=http_server.url("/feed.xml"), next_fetch_at=timezone.now() + timedelta(hours=1))
    Source.objects.filter(pk=source.pk).update(import_locked_until=timezone.now() - timedelta(seconds=1))
    dead = ImportRun.objects.create(source=source)

    with django_capture_on_commit_callbacks():
        pipeline.request_import(source=source)
    run = pipeline.import_source(source_id=source.pk)

    assert run.outcome == ImportRun.Outcome.IMPORTED
    dead.refresh_from_db()
    assert dead.outcome == ImportRun.Outcome.INTERRUPTED
    assert Story.objects.get(source=source).pipeline_state == State.IMPORTED


def test_a_late_duplicate_message_does_not_import_again(http_server):
    source = SourceFactory(feed_url=http_server.url("/feed.xml"))

    assert pipeline.import_source(source_id=source.pk) is None
    assert not http_server.requests


def test_a_dead_workers_host_slot_lapses_with_its_lease(settings):
    settings.IMPORT_MAX_PARALLEL_PER_HOST = 1
    HostSlot.objects.create(
        host="feeds.example.org", number=0, holder="dead", lease_until=timezone.now() - timedelta(seconds=1)
    )

    with service.host_slot("https://feeds.example.org/a.xml") as slot:
        assert slot is not None
        with service.host_slot("https://feeds.example.org/b.xml") as second:
            assert second is None
    assert HostSlot.objects.get().holder == ""


def test_the_lease_heartbeat_renews_while_the_block_runs():
    from stories import leases

    beats = []
    with leases.kept_alive(lambda: beats.append(1), every=0.05):
        import time

        time.sleep(0.3)
    count = len(beats)
    assert count >= 3
    time.sleep(0.15)
    assert len(beats) == count
