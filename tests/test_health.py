"""Health checks: /healthz says the process answers, /readyz names each dependency and the one that is down."""

import json
import socket
import subprocess
import sys

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client

from newsreader import health
from tests.test_settings import PROJECT


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def fresh_process(monkeypatch):
    """As in a process that has not yet seen every migration applied."""
    monkeypatch.setattr(health, "_migrations_applied", False)


def test_healthz_answers_without_touching_the_database_or_a_session(client):
    response = client.get("/healthz")  # no django_db mark: a query would fail the test

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert not response.cookies
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_is_200_and_names_each_check_when_all_is_up(client, settings, fresh_process):
    response = client.get("/readyz")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == body["checks"]["migrations"] == body["checks"]["broker"] == "ok"
    assert body["checks"]["redis"] == ("ok" if settings.REDIS_URL else "not configured")
    assert not response.cookies
    assert "no-store" in response["Cache-Control"]
    assert "X-Page-Cache" not in response


@pytest.mark.django_db
def test_readyz_is_503_naming_redis_when_redis_is_unreachable(client, settings, fresh_process):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis"]
    assert body["checks"]["redis"] == "unreachable"
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_readyz_is_503_naming_the_broker_when_it_is_unreachable(client, settings, fresh_process):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


@pytest.mark.django_db
def test_readyz_reports_unapplied_migrations_until_migrate_has_run(client, fresh_process):
    MigrationRecorder.Migration.objects.filter(app="sessions", name="0001_initial").delete()

    assert health.unapplied_migrations() == ["sessions.0001_initial"]
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["migrations"]
    assert response.json()["checks"]["migrations"] == "1 not applied; run manage.py migrate"

    MigrationRecorder.Migration.objects.create(app="sessions", name="0001_initial")
    assert health.unapplied_migrations() == []
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_readyz_reads_the_migrations_once_per_process_then_costs_one_query(
    client, fresh_process, django_assert_num_queries
):
    client.get("/readyz")

    with django_assert_num_queries(1):  # SELECT 1
        assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_probes_pass_over_plain_http_from_127_0_0_1_under_production_security_settings(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["news.example.org"]
    probe = Client(REMOTE_ADDR="127.0.0.1")

    assert probe.get("/healthz", HTTP_HOST="127.0.0.1:8000").status_code == 200
    assert probe.get("/readyz", HTTP_HOST="10.1.2.3").status_code in (200, 503)
    # Every other page still goes to HTTPS, and still checks the host.
    assert probe.get("/robots.txt", HTTP_HOST="news.example.org")["Location"] == "https://news.example.org/robots.txt"
    assert probe.get("/robots.txt", HTTP_HOST="127.0.0.1:8000").status_code == 400


def test_probes_answer_only_get_and_head(client):
    assert client.head("/healthz").status_code == 200
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_a_process_whose_database_is_down_is_alive_but_not_ready(tmp_path):
    script = (
        "import json, django; django.setup()\n"
        "from django.test import Client\n"
        "client = Client()\n"
        "alive, ready = client.get('/healthz'), client.get('/readyz')\n"
        "print(json.dumps([alive.status_code, ready.status_code, ready.json()]))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DEBUG": "true",
        "DJANGO_SETTINGS_MODULE": "newsreader.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port()}/newsreader",
        "NEWSREADER_VAR_DIR": str(tmp_path),
    }

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    alive, ready, body = json.loads(result.stdout.splitlines()[-1])
    assert (alive, ready) == (200, 503)
    assert body["failing"] == ["database"]
    assert body["checks"]["migrations"] == "not checked: the database is unavailable"
