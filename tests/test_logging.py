"""Structured logs: with LOG_FORMAT=json one JSON object a line; every line of a request carries its request
id (sent back as X-Request-ID) and user id, one access line per request has the view, status and duration,
and every line of a Celery task carries the task's name and id and the source or story it works on."""

import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.urls import path
from prometheus_client.parser import text_string_to_metric_families

from newsreader import logs
from stories import tasks
from stories.models import Story
from tests.conftest import require
from tests.factories import SourceFactory, StoryFactory, UserFactory
from tests.processes import CeleryProcess

PROJECT = Path(__file__).resolve().parent.parent


def harbour_report(request):
    reader = "a reader" if request.user.is_authenticated else "a visitor"
    logging.getLogger("tests.harbour").warning("The harbour report was read by %s", reader)
    return HttpResponse("ok")


urlpatterns = [path("harbour/", harbour_report, name="harbour_report")]


@pytest.fixture
def json_lines():
    """What the root logger writes through the JSON formatter during the test, one parsed object a line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(logging.INFO)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(previous_level)


# --- The format -----------------------------------------------------------------------------------


def test_a_json_line_has_time_level_logger_message_and_the_traceback(json_lines):
    try:
        raise ValueError("the tide table is wrong")
    except ValueError:
        logging.getLogger("tests.tides").exception("Could not read %s", "the tide table")

    [line] = json_lines()
    assert line["level"] == "ERROR"
    assert line["logger"] == "tests.tides"
    assert line["message"] == "Could not read the tide table"
    assert line["time"].endswith("+00:00") and "T" in line["time"]
    assert "ValueError: the tide table is wrong" in line["exception"]


def test_log_format_json_makes_every_line_a_json_object():
    code = "import logging; logging.getLogger('tests.harbour').warning('Ferry %s', 'late')"
    result = _run_manage("shell", "-c", code, log_format="json")

    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert {"level": "WARNING", "logger": "tests.harbour", "message": "Ferry late"}.items() <= lines[-1].items()


def test_log_format_text_stays_the_default():
    result = _run_manage("shell", "-c", "import logging; logging.getLogger('tests.harbour').warning('Ferry late')")

    assert result.stderr.strip().endswith("WARNING tests.harbour: Ferry late")


def test_an_unknown_log_format_stops_startup_with_a_clear_message():
    result = _run_manage("check", log_format="yaml", check=False)

    assert result.returncode != 0
    assert 'LOG_FORMAT must be "text" or "json"' in result.stderr


def _run_manage(*args: str, log_format: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "LOG_FORMAT"}
    environment["DEBUG"] = "true"
    if log_format:
        environment["LOG_FORMAT"] = log_format
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


# --- Requests -------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.urls("tests.test_logging")
def test_every_line_of_a_request_carries_its_id_and_the_access_line_its_user_view_status_and_duration(json_lines):
    reader = UserFactory(username="ana", email="ana@example.org")
    client = Client()
    client.force_login(reader)

    response = client.get("/harbour/")

    request_id = response["X-Request-ID"]
    [said, access] = [line for line in json_lines() if line["logger"] in ("tests.harbour", "newsreader.access")]
    assert said["message"] == "The harbour report was read by a reader"
    assert said["request_id"] == request_id
    assert said["user_id"] == reader.pk
    assert access["request_id"] == request_id
    assert access["user_id"] == reader.pk
    assert access["view"] == "harbour_report"
    assert access["status"] == 200
    assert access["method"] == "GET"
    assert isinstance(access["duration_ms"], float) and access["duration_ms"] >= 0
    assert "ana@example.org" not in json.dumps(json_lines())


@pytest.mark.django_db
@pytest.mark.urls("tests.test_logging")
def test_a_visitors_access_line_has_no_user_id(json_lines):
    Client().get("/harbour/")

    [access] = [line for line in json_lines() if line["logger"] == "newsreader.access"]
    assert "user_id" not in access
    assert access["status"] == 200


@pytest.mark.django_db
def test_a_sane_incoming_request_id_round_trips(client, json_lines):
    response = client.get("/robots.txt", HTTP_X_REQUEST_ID="lb-7f3a9c:42.1")

    assert response["X-Request-ID"] == "lb-7f3a9c:42.1"
    [access] = [line for line in json_lines() if line["logger"] == "newsreader.access"]
    assert access["request_id"] == "lb-7f3a9c:42.1"


@pytest.mark.django_db
def test_a_page_cache_hit_gets_its_own_request_id_not_the_stored_pages(settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    story = StoryFactory()

    rendered = Client().get(story.get_absolute_url(), HTTP_X_REQUEST_ID="first-visit")
    hit = Client().get(story.get_absolute_url(), HTTP_X_REQUEST_ID="second-visit")

    assert hit["X-Page-Cache"] == "hit"
    assert (rendered["X-Request-ID"], hit["X-Request-ID"]) == ("first-visit", "second-visit")


@pytest.mark.django_db
@pytest.mark.parametrize("incoming", ["", "two words", "id\nforged log line", "x" * 200, "<script>", "-leading-dash"])
def test_a_missing_or_odd_request_id_is_replaced_by_a_fresh_one(client, incoming):
    first = client.get("/robots.txt", HTTP_X_REQUEST_ID=incoming)["X-Request-ID"]
    second = client.get("/robots.txt", HTTP_X_REQUEST_ID=incoming)["X-Request-ID"]

    assert first != incoming
    assert len(first) == 32 and int(first, 16) >= 0
    assert first != second


# --- Celery tasks ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_story_tasks_lines_carry_the_task_and_the_story(json_lines, settings):
    settings.IMAGE_PROVIDERS = []
    story = StoryFactory(pipeline_state=Story.PipelineState.LABELLED)

    result = tasks.advance_story_task.apply(args=[story.pk])
    logging.getLogger("tests.after").info("After the task")

    task_lines = [line for line in json_lines() if line.get("task_id") == result.id]
    assert task_lines, json_lines()
    for line in task_lines:
        assert line["task_name"] == "stories.tasks.advance_story_task"
        assert line["story_id"] == story.pk
    assert any("has no picture" in line["message"] for line in task_lines)
    [after] = [line for line in json_lines() if line["logger"] == "tests.after"]
    assert "task_id" not in after and "story_id" not in after


@pytest.mark.django_db
def test_an_import_tasks_lines_carry_the_source(json_lines):
    source = SourceFactory()

    result = tasks.import_source_task.apply(kwargs={"source_id": source.pk})

    lines = [line for line in json_lines() if line.get("task_id") == result.id]
    assert any("was not asked for" in line["message"] for line in lines)
    assert any(line["logger"] == "celery.app.trace" for line in lines)  # Celery's own "succeeded" line too
    for line in lines:
        assert line["task_name"] == "stories.tasks.import_source_task"
        assert line["source_id"] == source.pk


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_writes_json_lines_with_task_ids_and_its_metrics_reach_the_scrape(
    redis_client, tmp_path, monkeypatch
):
    """A Celery worker with LOG_FORMAT=json and PROMETHEUS_MULTIPROC_DIR, as in production."""
    require(connection.vendor == "postgresql", "worker tests need PostgreSQL (set DATABASE_URL)")
    redis_client.flushdb()
    multiproc_dir = tmp_path / "metrics"
    multiproc_dir.mkdir()
    source = SourceFactory()
    worker = CeleryProcess(
        "worker",
        log=tmp_path / "worker.log",
        environment={"LOG_FORMAT": "json", "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)},
    ).start()
    try:
        result = tasks.import_source_task.delay(source.pk)
        deadline = time.monotonic() + 60
        while not (lines := [line for line in _json_lines(worker.log) if line.get("task_id") == result.id]):
            assert worker.running and time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.2)
        time.sleep(0.5)  # the task's last lines and its metrics
    finally:
        worker.stop()

    assert any("was not asked for" in line["message"] and line["source_id"] == source.pk for line in lines)
    assert {line["task_name"] for line in lines} == {"stories.tasks.import_source_task"}
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(multiproc_dir))
    scrape = Client().get("/metrics").content.decode()
    runs = [
        sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == "newsreader_celery_task_duration_seconds_count"
        and sample.labels == {"task": "stories.tasks.import_source_task", "state": "SUCCESS"}
    ]
    assert runs == [1.0]


def _json_lines(log: Path) -> list[dict]:
    lines = []
    for text in log.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines
