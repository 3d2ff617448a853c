"""Importing a source end to end against a real HTTP server on 127.0.0.1."""

from datetime import timedelta
from email.utils import format_datetime

import pytest
from django.utils import timezone

from stories import pipeline
from stories.importing import service
from stories.models import ImportRun, Source, Story
from tests.factories import SourceFactory, StoryFactory
from tests.httpserver import Reply

pytestmark = pytest.mark.django_db


def rss(*items: str, ttl: int | None = None) -> bytes:
    ttl_element = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Harbour Ledger</title>'
        f"<link>https://ledger.example.org/</link>{ttl_element}{''.join(items)}</channel></rss>"
    ).encode()


def item(n: int, *, title: str | None = None, body: str | None = None, guid: str | None = None) -> str:
    title = title or f"Harbour story {n}"
    body = body or f"<p>Paragraph {n} about the harbour, its ferries and cranes.</p>"
    guid = guid or f"urn:story:{n}"
    published = format_datetime(timezone.now() - timedelta(hours=n), usegmt=True)
    return (
        f"<item><title>{title}</title><link>https://ledger.example.org/story-{n}</link><guid>{guid}</guid>"
        f"<pubDate>{published}</pubDate><category>Ferries</category>"
        f"<description><![CDATA[{body}]]></description></item>"
    )


@pytest.fixture
def feed_source(http_server, settings):
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    return SourceFactory(feed_url=http_server.url("/feed.xml"))


def serve(http_server, body: bytes, **headers: str) -> None:
    http_server.route("/feed.xml", Reply(body=body, headers={"Content-Type": "application/rss+xml", **headers}))


def run_import(source: Source) -> ImportRun:
    run = service.import_source(source_id=source.pk)
    source.refresh_from_db()
    return run


def test_first_import_stores_each_entry_as_a_published_sanitised_story(http_server, feed_source):
    serve(http_server, rss(item(1), item(2, body='<p onclick="x()">Hi<script>alert(1)</script></p>')))

    run = run_import(feed_source)

    assert run.outcome == ImportRun.Outcome.IMPORTED
    assert (run.new_count, run.updated_count, run.unchanged_count, run.rejected_count) == (2, 0, 0, 0)
    stories = Story.objects.filter(source=feed_source).order_by("published_at")
    assert [story.title for story in stories] == ["Harbour story 2", "Harbour story 1"]
    assert all(story.status == Story.Status.PUBLISHED for story in stories)
    assert "onclick" not in stories[0].body_html and "<script" not in stories[0].body_html
    assert [tag.name for tag in stories[0].tags.all()] == ["Ferries"]
    assert feed_source.last_status == 200
    assert feed_source.consecutive_errors == 0
    assert feed_source.last_success_at is not None
    assert feed_source.next_fetch_at > timezone.now() + timedelta(minutes=4)


def test_import_names_newsreader_in_its_user_agent(http_server, feed_source):
    serve(http_server, rss(item(1)))

    run_import(feed_source)

    assert "Newsreader" in http_server.requests[-1].headers["User-Agent"]


def test_importing_twice_stores_each_entry_once(http_server, feed_source):
    serve(http_server, rss(item(1), item(2)))
    run_import(feed_source)
    feed_source.content_hash = ""  # force a full second pass over the same entries
    feed_source.save()

    run = run_import(feed_source)

    assert (run.new_count, run.unchanged_count) == (0, 2)
    assert Story.objects.filter(source=feed_source).count() == 2


def test_unchanged_feed_costs_a_conditional_get(http_server, feed_source):
    def conditional(request):
        if request.headers.get("If-None-Match") == '"v1"':
            return Reply(status=304, headers={"ETag": '"v1"'})
        return Reply(body=rss(item(1)), headers={"Content-Type": "application/rss+xml", "ETag": '"v1"'})

    http_server.route("/feed.xml", conditional)
    run_import(feed_source)

    run = run_import(feed_source)

    assert run.outcome == ImportRun.Outcome.NOT_MODIFIED
    assert run.http_status == 304
    assert feed_source.consecutive_errors == 0


def test_unchanged_bytes_without_validators_cost_a_hash_not_a_parse(http_server, feed_source, monkeypatch):
    serve(http_server, rss(item(1)))
    run_import(feed_source)

    def no_parsing(**kwargs):
        raise AssertionError("an unchanged feed must not be parsed")

    monkeypatch.setattr(service.parse, "parse_feed", no_parsing)
    run = run_import(feed_source)

    assert run.outcome == ImportRun.Outcome.UNCHANGED


def test_an_updated_entry_updates_its_story_and_keeps_the_old_version(http_server, feed_source):
    serve(http_server, rss(item(1)))
    run_import(feed_source)
    serve(http_server, rss(item(1, title="Harbour story 1, corrected")))

    run = run_import(feed_source)

    story = Story.objects.get(source=feed_source)
    assert (run.new_count, run.updated_count) == (0, 1)
    assert story.title == "Harbour story 1, corrected"
    revision = story.revisions.get()
    assert revision.title == "Harbour story 1"
    assert revision.changed_fields == ["title"]


def test_entries_without_any_text_are_rejected_and_counted(http_server, feed_source):
    serve(http_server, rss(item(1), "<item><link>https://ledger.example.org/empty</link></item>"))

    run = run_import(feed_source)

    assert (run.new_count, run.rejected_count) == (1, 1)


def test_a_feed_whose_guids_repeat_switches_to_links(http_server, feed_source):
    serve(http_server, rss(item(1, guid="same"), item(2, guid="same"), item(3, guid="same")))

    run_import(feed_source)

    assert feed_source.key_strategy == Source.KeyStrategy.URL
    assert Story.objects.filter(source=feed_source).count() == 3


def test_gone_feed_deactivates_the_source_with_a_reason(http_server, feed_source):
    http_server.route("/feed.xml", Reply(status=410, body=b"gone"))

    run = run_import(feed_source)

    assert run.outcome == ImportRun.Outcome.FAILED
    assert run.http_status == 410
    assert not feed_source.is_active
    assert "410" in feed_source.deactivated_reason


def test_too_many_requests_waits_at_least_retry_after(http_server, feed_source):
    http_server.route("/feed.xml", Reply(status=429, headers={"Retry-After": "7200"}))

    run = run_import(feed_source)

    assert run.http_status == 429
    assert feed_source.consecutive_errors == 1
    assert "429" in feed_source.last_error
    assert feed_source.next_fetch_at > timezone.now() + timedelta(hours=1, minutes=59)


def test_repeated_failures_back_off_and_a_success_resets(http_server, feed_source):
    http_server.route("/feed.xml", Reply(status=503))
    delays = []
    for _ in range(3):
        run_import(feed_source)
        delays.append(feed_source.next_fetch_at - timezone.now())

    assert feed_source.consecutive_errors == 3
    assert delays[0] < delays[1] < delays[2]
    serve(http_server, rss(item(1)))
    run_import(feed_source)
    assert feed_source.consecutive_errors == 0
    assert feed_source.last_error == ""


def test_an_html_page_instead_of_a_feed_is_a_clear_error(http_server, feed_source):
    http_server.route(
        "/feed.xml",
        Reply(body=b"<!doctype html><html><body><p>Welcome</p></body></html>", headers={"Content-Type": "text/html"}),
    )

    run = run_import(feed_source)

    assert run.outcome == ImportRun.Outcome.FAILED
    assert "HTML" in feed_source.last_error
    assert not Story.objects.exists()


def test_redirect_to_a_private_address_is_refused_and_recorded(http_server, feed_source):
    http_server.route("/feed.xml", Reply.redirect("http://169.254.169.254/latest/meta-data/"))

    run = run_import(feed_source)

    assert run.outcome == ImportRun.Outcome.FAILED
    assert "169.254.169.254" in feed_source.last_error


def test_the_guard_is_on_by_default(http_server, settings):
    settings.FETCH_ALLOWED_NETWORKS = []  # as shipped; the http_server fixture opens 127.0.0.1
    source = SourceFactory(feed_url=http_server.url("/feed.xml"))
    serve(http_server, rss(item(1)))

    run = run_import(source)

    assert run.outcome == ImportRun.Outcome.FAILED
    assert http_server.connections == 0


def test_only_one_import_of_a_source_runs_at_a_time(http_server, feed_source):
    serve(http_server, rss(item(1)))
    Source.objects.filter(pk=feed_source.pk).update(import_locked_until=timezone.now() + timedelta(minutes=5))

    assert service.import_source(source_id=feed_source.pk) is None
    assert not http_server.requests


def test_feed_ttl_sets_the_shortest_interval(http_server, feed_source):
    serve(http_server, rss(item(1), ttl=180))

    run_import(feed_source)

    assert feed_source.min_interval_minutes == 180
    assert feed_source.next_fetch_at > timezone.now() + timedelta(minutes=160)


def test_near_duplicates_from_other_sources_show_as_one_card_and_also_covered_by(http_server, feed_source, client):
    text = "The harbour authority opened a new ferry terminal on the north quay with electric charging for ships"
    first = StoryFactory(title="Ferry terminal opens", body_html=f"<p>{text}</p>")
    first.similarity_signature = service.dedupe.story_signature(f"{first.title} {first.dek} {text}")
    first.save()
    serve(http_server, rss(item(1, title="Ferry terminal opens", body=f"<p>{text}.</p>")))

    run_import(feed_source)

    duplicate = Story.objects.get(source=feed_source)
    assert duplicate.duplicate_of == first
    assert [story.pk for story in client.get("/").context["stories"]] == [first.pk]
    html = client.get(first.get_absolute_url()).content.decode()
    assert "Also covered by" in html
    assert duplicate.get_absolute_url() in html


def test_search_finds_an_imported_story_as_soon_as_the_import_is_done(http_server, feed_source):
    serve(http_server, rss(item(1, title="Lighthouse keepers return", body="<p>The keepers sail at dawn.</p>")))

    run_import(feed_source)

    story = Story.objects.get(source=feed_source)
    assert list(Story.objects.search("lighthouse keepers")) == [story]
    assert list(Story.objects.search("sail dawn")) == [story]


def test_a_feeds_own_look_alike_stories_are_not_grouped_with_each_other(http_server, feed_source):
    template = "<p>Tide table for berth {n}: high water at six, low water at noon, as every day at the quay.</p>"
    serve(http_server, rss(*(item(n, title=f"Tide table {n}", body=template.format(n=n)) for n in range(1, 6))))

    run_import(feed_source)

    assert Story.objects.filter(source=feed_source).count() == 5
    assert not Story.objects.filter(duplicate_of__isnull=False).exists()


def test_a_copy_is_grouped_with_the_earliest_of_equally_similar_stories_from_other_sources(http_server, feed_source):
    text = "The harbour authority opened a new ferry terminal on the north quay with electric charging for ships"
    signature = service.dedupe.story_signature(f"Ferry terminal opens  {text}")
    earlier, later = (StoryFactory(title="Ferry terminal opens", body_html=f"<p>{text}</p>") for _ in range(2))
    Story.objects.filter(pk__in=[earlier.pk, later.pk]).update(similarity_signature=signature)
    serve(http_server, rss(item(1, title="Ferry terminal opens", body=f"<p>{text}</p>")))

    run_import(feed_source)

    assert Story.objects.get(source=feed_source).duplicate_of == earlier


def test_full_text_replaces_a_short_feed_summary(http_server, feed_source):
    article = "".join(
        f"<p>Sentence {n} of the full article about the new harbour terminal and its ferries.</p>" for n in range(30)
    )
    http_server.route(
        "/story-1",
        Reply(
            body=f"<html><head><title>T</title></head><body><article><h1>T</h1>{article}</article></body></html>".encode(),
            headers={"Content-Type": "text/html"},
        ),
    )
    story = StoryFactory(source=feed_source, original_url=http_server.url("/story-1"), body_html="<p>Short.</p>")

    service.extract_full_text(story_id=story.pk)

    story.refresh_from_db()
    assert "Sentence 29 of the full article" in story.body_html


def test_the_sweep_queues_due_sources_once(feed_source, django_capture_on_commit_callbacks):
    SourceFactory(next_fetch_at=timezone.now() + timedelta(hours=1))
    SourceFactory(is_active=False)
    Source.objects.filter(pk=feed_source.pk).update(next_fetch_at=timezone.now() - timedelta(minutes=1))

    with django_capture_on_commit_callbacks() as callbacks:
        assert pipeline.sweep().sources_queued == 1
        assert pipeline.sweep().sources_queued == 0

    assert len(callbacks) == 1


def test_a_busy_host_gets_no_more_parallel_imports(http_server, feed_source, settings):
    settings.IMPORT_MAX_PARALLEL_PER_HOST = 1
    serve(http_server, rss(item(1)))

    with service.host_slot(feed_source.feed_url) as got_slot:
        assert got_slot
        assert service.import_source(source_id=feed_source.pk) is None
    assert not http_server.requests
    feed_source.refresh_from_db()
    assert feed_source.next_fetch_at > timezone.now() + timedelta(seconds=50)

    assert run_import(feed_source).outcome == ImportRun.Outcome.IMPORTED


def test_an_entry_cut_to_the_per_entry_limit_is_noted_on_the_run(http_server, feed_source, monkeypatch):
    monkeypatch.setattr(service.parse, "MAX_ENTRY_TEXT_CHARS", 2_000)
    serve(http_server, rss(item(1, body="<p>" + "The quay grows longer. " * 500 + "</p>")))

    run = run_import(feed_source)

    assert run.outcome == ImportRun.Outcome.IMPORTED
    assert "cut" in run.error
    assert len(Story.objects.get(source=feed_source).body_html) < 2_100
