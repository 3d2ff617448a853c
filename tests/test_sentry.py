"""Error reporting: with SENTRY_DSN set, exceptions in views and Celery tasks reach the Sentry server (here a
real HTTP server on 127.0.0.1) with the release, and nothing a reader wrote or that identifies them."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import brotli
import pytest
import sentry_sdk
from celery import shared_task
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client, RequestFactory
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from newsreader import error_reporting
from tests.factories import UserFactory
from tests.httpserver import Reply

PROJECT = Path(__file__).resolve().parent.parent

EMAIL = "ana.secret@example.org"
PASSWORD = "hunter2-horse-battery"
COMMENT = "My private confession about the harbour master"
COOKIE = "cookie-value-nobody-may-see"
TOKEN = "bearer-token-nobody-may-see"


@csrf_exempt  # posted straight to the WSGI handler, without a form to take a token from
def harbour_ledger(request):
    request.POST  # noqa: B018  (the view has read the form, as a real one would)
    raise LookupError("the harbour ledger is missing")


urlpatterns = [path("ledger/", harbour_ledger)]


@shared_task(name="tests.test_sentry.count_the_boats")
def count_the_boats() -> None:
    raise ArithmeticError("the boats cannot be counted")


@pytest.fixture
def sentry_server(http_server):
    """Sentry reporting to a local server, turned off again after the test."""
    http_server.route("/api/1/envelope/", Reply(status=200, body=b"{}"))
    error_reporting.init_sentry(dsn=f"http://publickey@127.0.0.1:{http_server.port}/1", release="newsreader@test")
    yield http_server
    sentry_sdk.flush(timeout=5)
    sentry_sdk.init(dsn=None)


def received(server) -> str:
    """Everything the server received, decompressed, as one text."""
    sentry_sdk.flush(timeout=5)
    bodies = []
    for request in server.requests:
        encoding = request.headers.get("Content-Encoding", "")
        body = request.body
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":
            body = brotli.decompress(body)
        bodies.append(body.decode())
    return "\n".join(bodies)


def events(text: str) -> list[dict]:
    """The error events among the envelopes' items (each envelope: header, then item header and payload)."""
    found = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and "exception" in item:
            found.append(item)
    return found


def wsgi_post(path: str, data: dict, **headers: str) -> int:
    """POST through Django's WSGI handler, as gunicorn calls it: Sentry reads the request's URL and
    headers there (the test client bypasses it)."""
    request = RequestFactory().post(path, data, **headers)
    statuses = []
    response = WSGIHandler()(request.environ, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(response)
    response.close()
    return int(statuses[0].split()[0])


@pytest.mark.django_db
@pytest.mark.urls("tests.test_sentry")
def test_an_exception_in_a_view_reaches_sentry_without_anything_private(sentry_server):
    reader = UserFactory(username="ana", email=EMAIL)
    client = Client()
    client.force_login(reader)
    session_id = client.cookies["sessionid"].value

    status = wsgi_post(
        f"/ledger/?reply_to={EMAIL}",
        {"body": COMMENT, "email": EMAIL, "password": PASSWORD},
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
        HTTP_COOKIE=f"sessionid={session_id}; newsreader_theme={COOKIE}",
        HTTP_X_REQUEST_ID="ledger-request-1",
    )

    assert status == 500
    text = received(sentry_server)
    [event, *_] = events(text)
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "LookupError"
    assert exception["value"] == "the harbour ledger is missing"
    assert event["release"] == "newsreader@test"
    assert event["request"]["url"].endswith("/ledger/")
    assert event["request"]["method"] == "POST"
    assert event["request"]["headers"]["X-Request-Id"] == "ledger-request-1"
    assert not {"Authorization", "Cookie"} & set(event["request"]["headers"])
    for private in (EMAIL, PASSWORD, COMMENT, COOKIE, TOKEN, session_id):
        assert private not in text


@pytest.mark.django_db
def test_an_exception_in_a_celery_task_reaches_sentry(sentry_server):
    result = count_the_boats.apply()

    assert result.failed()
    [event, *_] = events(received(sentry_server))
    assert event["exception"]["values"][-1]["type"] == "ArithmeticError"
    assert event["release"] == "newsreader@test"


def test_the_scrubber_removes_bodies_cookies_authorization_addresses_and_passwords():
    event = {
        "message": f"Mail to {EMAIL} bounced",
        "request": {
            "url": "https://news.example.org/comments/harbour/post/",
            "query_string": f"reply_to={EMAIL}&q=harbour+master",
            "data": {"body": COMMENT},
            "cookies": {"sessionid": COOKIE},
            "headers": {"Authorization": f"Bearer {TOKEN}", "Cookie": f"sessionid={COOKIE}", "Accept": "text/html"},
        },
        "user": {"id": "7", "email": EMAIL, "ip_address": "203.0.113.9"},
        "extra": {"password1": PASSWORD, "signup": {"email": EMAIL}},
        "breadcrumbs": {"values": [{"category": "query", "message": "INSERT …", "data": {"db.params": [COMMENT]}}]},
    }

    scrubbed = error_reporting.scrub_event(event)
    text = json.dumps(scrubbed)

    for private in (EMAIL, PASSWORD, COMMENT, COOKIE, TOKEN, "203.0.113.9"):
        assert private not in text
    assert scrubbed["request"]["headers"] == {"Accept": "text/html"}
    assert "query_string" not in scrubbed["request"]
    assert scrubbed["user"] == {"id": "7"}
    assert scrubbed["message"] == "Mail to [Filtered] bounced"
    assert scrubbed["request"]["url"] == "https://news.example.org/comments/harbour/post/"


def test_the_default_release_is_the_checked_out_commit(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / ".git" / "packed-refs").write_text(f"# pack-refs with: peeled\n{commit} refs/heads/main\n")

    assert error_reporting.git_commit(tmp_path) == commit
    (tmp_path / ".git" / "refs" / "heads").mkdir(parents=True)
    (tmp_path / ".git" / "refs" / "heads" / "main").write_text("fedcba9876543210fedcba9876543210fedcba98\n")
    assert error_reporting.git_commit(tmp_path) == "fedcba9876543210fedcba9876543210fedcba98"


def test_without_git_the_release_is_the_package_version(tmp_path):
    assert error_reporting.git_commit(tmp_path) is None
    assert error_reporting.package_version() == "newsreader@0.1.0"


def _sentry_as_settings_leave_it(**environment: str) -> dict:
    script = (
        "import json, sentry_sdk; client = sentry_sdk.get_client(); "
        "print(json.dumps({'active': client.is_active(), 'release': client.options.get('release'), "
        "'pii': client.options.get('send_default_pii'), "
        "'integrations': sorted(client.integrations)}))"
    )
    base = {key: value for key, value in os.environ.items() if not key.startswith("SENTRY_")}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=PROJECT,
        env={**base, "DEBUG": "true", **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_settings_turn_sentry_on_with_a_dsn_and_the_release_given():
    sentry = _sentry_as_settings_leave_it(SENTRY_DSN="http://publickey@127.0.0.1:9/1", SENTRY_RELEASE="newsreader@9.9")

    assert sentry["active"] is True
    assert sentry["release"] == "newsreader@9.9"
    assert sentry["pii"] is False
    assert {"django", "celery"} <= set(sentry["integrations"])


def test_sentry_is_off_without_a_dsn():
    assert _sentry_as_settings_leave_it()["active"] is False
