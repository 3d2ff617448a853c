"""/metrics: who may read it, and that each metric an operator watches moves when the thing it counts happens,
in one process and summed over several (PROMETHEUS_MULTIPROC_DIR, as under gunicorn and Celery)."""

import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis
from celery import shared_task
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.test import Client
from django.urls import path
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from comments import services
from comments.models import ModerationRule
from newsreader import gunicorn_conf, observability
from stories import reports, tasks
from stories.models import ImportRun, LabelReport, Story
from tests.factories import ModerationRuleFactory, SourceFactory, StoryFactory, UserFactory

PROJECT = Path(__file__).resolve().parent.parent


# --- Helpers ---------------------------------------------------------------------------------------


def scrape(client: Client, **request) -> str:
    response = client.get("/metrics", **request)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def value(text: str, sample_name: str, **labels: str) -> float:
    """The sample's value in a scrape, 0 when it is not there (a counter never touched)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def current(sample_name: str, **labels: str) -> float:
    return value(scrape(Client()), sample_name, **labels)


def failing_view(error: Exception):
    def view(request):
        raise error

    return view


urlpatterns = [
    path("metrics", observability.metrics_view),
    path("boom/redis/", failing_view(redis.exceptions.ConnectionError("Redis went away")), name="boom_redis"),
    path("boom/database/", failing_view(DatabaseError("the database went away")), name="boom_database"),
]


@shared_task(name="tests.test_metrics.lose_redis")
def lose_redis() -> None:
    raise redis.exceptions.TimeoutError("Redis timed out")


# --- Who may read it -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_are_served_to_this_machine_when_nothing_is_configured(client):
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


@pytest.mark.django_db
def test_metrics_are_a_404_for_another_address_when_nothing_is_configured(client):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 404
    assert b"newsreader_" not in response.content


@pytest.mark.django_db
def test_a_request_relayed_by_an_untrusted_local_proxy_is_not_taken_for_local(client):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")

    assert response.status_code == 404


@pytest.mark.django_db
def test_with_a_token_the_request_must_bear_it_from_any_address(client, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic s3cret-scrape-token").status_code == 404
    ok = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert ok.status_code == 200
    assert b"newsreader_http_request_duration_seconds" in ok.content


@pytest.mark.django_db
def test_with_allowed_networks_only_they_are_served_and_not_this_machine(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "2001:db8::/32"]

    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="11.1.2.3").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404


@pytest.mark.django_db
def test_with_a_token_and_networks_both_are_required(client, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    bearer = {"HTTP_AUTHORIZATION": "Bearer s3cret-scrape-token"}

    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1", **bearer).status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", **bearer).status_code == 200


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_clients_address_decides(client, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 404


def test_a_mistyped_allowed_network_is_refused_with_its_name(settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "10.0.0.300/32"]

    with pytest.raises(ImproperlyConfigured, match=r"METRICS_ALLOWED_NETWORKS: .*10\.0\.0\.300"):
        observability.allowed_networks()


# --- Requests ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_request_duration_is_recorded_by_view_name_and_status(client):
    name = "newsreader_http_request_duration_seconds_count"
    before_ok = current(name, view="robots_txt", status="200")
    before_missing = current(name, view="unmatched", status="404")

    assert client.get("/robots.txt").status_code == 200
    assert client.get(f"/no-such-page-{uuid.uuid4().hex}/x").status_code == 404
    healthz = current(name, view="healthz", status="200")
    assert client.get("/healthz").status_code == 200

    text = scrape(client)
    assert value(text, name, view="robots_txt", status="200") == before_ok + 1
    assert value(text, name, view="unmatched", status="404") == before_missing + 1
    assert value(text, name, view="healthz", status="200") == healthz + 1  # answered before any URL resolves
    assert 'le="0.005"' in text  # a histogram, with buckets


@pytest.mark.django_db
def test_a_page_cache_hit_counts_as_a_hit_and_is_timed_under_its_view(client, settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    StoryFactory()
    hits = current("newsreader_page_cache_lookups_total", result="hit")
    misses = current("newsreader_page_cache_lookups_total", result="miss")
    timed = current("newsreader_http_request_duration_seconds_count", view="stories:list", status="200")

    assert "X-Page-Cache" not in Client().get("/")
    assert Client().get("/")["X-Page-Cache"] == "hit"

    text = scrape(client)
    assert value(text, "newsreader_page_cache_lookups_total", result="hit") == hits + 1
    assert value(text, "newsreader_page_cache_lookups_total", result="miss") == misses + 1
    assert value(text, "newsreader_http_request_duration_seconds_count", view="stories:list", status="200") == timed + 2


@pytest.mark.django_db
@pytest.mark.urls("tests.test_metrics")
def test_redis_and_database_errors_that_end_a_request_are_counted():
    client = Client(raise_request_exception=False)
    name = "newsreader_dependency_errors_total"
    redis_before = current(name, dependency="redis", origin="request")
    database_before = current(name, dependency="database", origin="request")

    assert client.get("/boom/redis/").status_code >= 500
    assert client.get("/boom/database/").status_code == 500

    text = scrape(client)
    assert value(text, name, dependency="redis", origin="request") == redis_before + 1
    assert value(text, name, dependency="database", origin="request") == database_before + 1


# --- Comments and reports --------------------------------------------------------------------------


@pytest.fixture
def commenting(db, client):
    """A signed-in reader on a story, and no moderation rule but those a test adds."""
    ModerationRule.objects.all().delete()
    author = UserFactory(username="ana")
    client.force_login(author)
    return client, StoryFactory(), author


def post_comment(client, story, body):
    return client.post(f"/comments/{story.slug}/post/", {"body": body, "idempotency_key": str(uuid.uuid4())})


def test_posted_held_and_rejected_comments_are_counted(commenting, django_capture_on_commit_callbacks):
    client, story, _ = commenting
    ModerationRuleFactory(kind="suspect_words", words="casino")
    ModerationRuleFactory(kind="banned_words", words="darn")
    name = "newsreader_comments_total"
    before = {outcome: current(name, outcome=outcome) for outcome in ("posted", "held", "rejected")}

    with django_capture_on_commit_callbacks(execute=True):
        post_comment(client, story, "Lovely harbour")
        post_comment(client, story, "casino night at the harbour")
        post_comment(client, story, "darn ferries")

    text = scrape(client)
    for outcome in ("posted", "held", "rejected"):
        assert value(text, name, outcome=outcome) == before[outcome] + 1, outcome


def test_removed_comments_and_reports_are_counted(commenting, django_capture_on_commit_callbacks):
    client, story, author = commenting
    moderator = UserFactory(username="mod", is_staff=True)
    with django_capture_on_commit_callbacks(execute=True):
        comment = services.comment_create(story=story, author=author, body="Ferries at dawn")
    removed = current("newsreader_comments_total", outcome="removed")
    reported = current("newsreader_reports_total", kind="comment")
    label_reports = current("newsreader_reports_total", kind="label")

    with django_capture_on_commit_callbacks(execute=True):
        services.comment_report(comment=comment, reporter=UserFactory(username="bea"), reason="spam")
        services.comment_remove(comment=comment, moderator=moderator, reason_code="spam")
        reports.report_label(story=story, reader=UserFactory(username="cy"), kind=LabelReport.Kind.SECTION)

    text = scrape(client)
    assert value(text, "newsreader_comments_total", outcome="removed") == removed + 1
    assert value(text, "newsreader_reports_total", kind="comment") == reported + 1
    assert value(text, "newsreader_reports_total", kind="label") == label_reports + 1


def test_a_decision_rolled_back_is_not_counted(commenting, django_capture_on_commit_callbacks):
    _, story, author = commenting
    before = current("newsreader_comments_total", outcome="posted")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.comment_create(story=story, author=author, body="Never committed")

    assert callbacks  # the count waits for the commit, which this test never makes
    assert current("newsreader_comments_total", outcome="posted") == before


# --- Imports and the pipeline ------------------------------------------------------------------------


@pytest.mark.django_db
def test_finished_imports_are_counted_by_outcome_with_their_new_entries(client, django_capture_on_commit_callbacks):
    source = SourceFactory()
    imported = current("newsreader_imports_total", outcome="imported")
    failed = current("newsreader_imports_total", outcome="failed")
    entries = current("newsreader_entries_imported_total")

    with django_capture_on_commit_callbacks(execute=True):
        run = ImportRun.objects.create(source=source)
        assert current("newsreader_imports_total", outcome="imported") == imported  # still running
        run.outcome, run.new_count, run.finished_at = ImportRun.Outcome.IMPORTED, 7, timezone.now()
        run.save()
        ImportRun.objects.create(source=source, outcome=ImportRun.Outcome.FAILED, error="HTTP 500")

    text = scrape(client)
    assert value(text, "newsreader_imports_total", outcome="imported") == imported + 1
    assert value(text, "newsreader_imports_total", outcome="failed") == failed + 1
    assert value(text, "newsreader_entries_imported_total") == entries + 7


@pytest.mark.django_db
def test_imports_the_sweep_closes_as_interrupted_are_counted(client):
    source = SourceFactory(import_locked_until=timezone.now() - timedelta(minutes=5))
    ImportRun.objects.create(source=source)
    interrupted = current("newsreader_imports_total", outcome="interrupted")

    tasks.sweep_pipeline.apply()

    assert current("newsreader_imports_total", outcome="interrupted") == interrupted + 1


@pytest.mark.django_db
def test_the_backlog_gauge_counts_stories_in_the_pipeline_by_state(client):
    overdue = timezone.now() - timedelta(minutes=10)
    StoryFactory.create_batch(2, pipeline_state=Story.PipelineState.IMPORTED)
    StoryFactory(pipeline_state=Story.PipelineState.LABELLED, pipeline_due_at=overdue)
    StoryFactory(pipeline_state=Story.PipelineState.ILLUSTRATED)

    text = scrape(client)

    assert value(text, "newsreader_pipeline_backlog_stories", state="imported") == 2
    assert value(text, "newsreader_pipeline_backlog_stories", state="full_text") == 0
    assert value(text, "newsreader_pipeline_backlog_stories", state="labelled") == 1
    assert 'newsreader_pipeline_backlog_stories{state="illustrated"}' not in text
    assert value(text, "newsreader_pipeline_overdue_stories") == 1


@pytest.mark.django_db
def test_a_pipeline_step_a_worker_runs_is_timed_by_step_and_outcome(client, settings):
    settings.IMAGE_PROVIDERS = []
    story = StoryFactory(pipeline_state=Story.PipelineState.LABELLED)
    name = "newsreader_pipeline_step_duration_seconds_count"
    before = current(name, step="image", outcome="done")
    task_runs = current("newsreader_celery_task_duration_seconds_count", task=tasks.advance_story_task.name)

    tasks.advance_story_task.apply(args=[story.pk])

    story.refresh_from_db()
    assert story.pipeline_state == Story.PipelineState.ILLUSTRATED
    text = scrape(client)
    assert value(text, name, step="image", outcome="done") == before + 1
    assert value(text, "newsreader_celery_task_duration_seconds_count", task=tasks.advance_story_task.name) == (
        task_runs + 1
    )


@pytest.mark.django_db
def test_labelling_time_is_taken_from_the_label_step_and_says_whether_it_fell_back(client):
    since = timezone.now()
    started, ended = since + timedelta(seconds=1), since + timedelta(seconds=3.5)
    step = {"started": started.isoformat(), "ended": ended.isoformat(), "outcome": "done"}
    old = {"started": (since - timedelta(hours=1)).isoformat(), "ended": (since - timedelta(hours=1)).isoformat()}
    story = StoryFactory(pipeline_steps={"label": step, "full_text": {**old, "outcome": "done"}}, label_fallback="429")
    fell_back = current("newsreader_labelling_duration_seconds_count", fell_back="true")
    seconds = current("newsreader_labelling_duration_seconds_sum", fell_back="true")
    full_text = current("newsreader_pipeline_step_duration_seconds_count", step="full_text", outcome="done")

    observability._observe_pipeline_steps(story.pk, since=since)

    text = scrape(client)
    assert value(text, "newsreader_labelling_duration_seconds_count", fell_back="true") == fell_back + 1
    assert value(text, "newsreader_labelling_duration_seconds_sum", fell_back="true") == pytest.approx(seconds + 2.5)
    # The step an earlier task ran is not timed again.
    assert value(text, "newsreader_pipeline_step_duration_seconds_count", step="full_text", outcome="done") == full_text


@pytest.mark.django_db
def test_a_failing_task_and_the_redis_error_that_ended_it_are_counted(client):
    failures = current("newsreader_celery_task_failures_total", task="tests.test_metrics.lose_redis")
    redis_errors = current("newsreader_dependency_errors_total", dependency="redis", origin="task")

    result = lose_redis.apply()

    assert result.failed()
    text = scrape(client)
    assert value(text, "newsreader_celery_task_failures_total", task="tests.test_metrics.lose_redis") == failures + 1
    assert value(text, "newsreader_dependency_errors_total", dependency="redis", origin="task") == redis_errors + 1


# --- Several processes -------------------------------------------------------------------------------

WRITER = """
import sys
from newsreader import metrics
for _ in range(int(sys.argv[1])):
    metrics.COMMENTS.labels(outcome="posted").inc()
    metrics.REQUEST_DURATION.labels(view="stories:list", status="200").observe(0.02)
"""


def _child_environment(multiproc_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir), "DEBUG": "true", **extra}


@pytest.mark.django_db
def test_a_scrape_sums_what_several_processes_wrote_to_the_multiprocess_directory(client, tmp_path, monkeypatch):
    for count in (2, 3):
        subprocess.run(
            [sys.executable, "-c", WRITER, str(count)],
            cwd=PROJECT,
            env=_child_environment(tmp_path),
            check=True,
            timeout=60,
        )
    assert len({file.name.rsplit("_", 1)[-1] for file in tmp_path.glob("counter_*.db")}) == 2

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    text = scrape(client)

    assert value(text, "newsreader_comments_total", outcome="posted") == 5
    assert value(text, "newsreader_http_request_duration_seconds_count", view="stories:list", status="200") == 5
    assert value(text, "newsreader_http_request_duration_seconds_bucket", view="stories:list", le="0.025") == 5
    # The database's backlog is still in the scrape.
    assert "newsreader_pipeline_backlog_stories" in text


def test_gunicorns_child_exit_hook_forgets_a_dead_workers_live_gauges_but_not_its_counters(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"")
    (tmp_path / "counter_4242.db").write_bytes(b"")

    gunicorn_conf.child_exit(server=None, worker=type("Worker", (), {"pid": 4242})())

    assert not (tmp_path / "gauge_livesum_4242.db").exists()
    assert (tmp_path / "counter_4242.db").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_gunicorn_with_two_workers_reports_the_requests_of_both(tmp_path):
    """The production setup: gunicorn with our config, two workers, one multiprocess directory."""
    multiproc_dir = tmp_path / "metrics"
    multiproc_dir.mkdir()
    port = _free_port()
    environment = _child_environment(multiproc_dir, NEWSREADER_VAR_DIR=str(tmp_path / "var"))
    for name in ("DATABASE_URL", "REDIS_URL", "METRICS_TOKEN", "METRICS_ALLOWED_NETWORKS"):
        environment.pop(name, None)
    command = [sys.executable, "-m", "gunicorn", "-c", "python:newsreader.gunicorn_conf", "newsreader.wsgi"]
    command += ["--workers", "2", "--bind", f"127.0.0.1:{port}"]
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(command, cwd=PROJECT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 90
        while True:  # both workers have loaded the app (each opens its counter file), and the port answers
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if len(list(multiproc_dir.glob("counter_*.db"))) == 2:
                    before = _requests_served(httpx.get(url, timeout=10).text)
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)

        # Concurrent batches until both workers have answered some (on a busy machine one may take a
        # whole batch).
        statuses = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            while len(statuses) < 400 and (len(statuses) < 40 or len(list(multiproc_dir.glob("histogram_*.db"))) < 2):
                statuses += pool.map(lambda _: httpx.get(url, timeout=10).status_code, range(40))

        assert statuses == [200] * len(statuses)
        assert len(list(multiproc_dir.glob("histogram_*.db"))) == 2  # both workers answered some
        # Each worker times its own requests; the scrape, answered by either, adds both up.
        assert _requests_served(httpx.get(url, timeout=10).text) == before + 1 + len(statuses)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _requests_served(text: str) -> float:
    return value(text, "newsreader_http_request_duration_seconds_count", view="metrics", status="200")
