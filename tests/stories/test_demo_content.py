"""`manage.py load_demo`: demo content for a new site, safe to load again."""

import re
from io import StringIO

import pytest
from django.core.management import call_command

from stories import demo
from stories.models import Source, Story

pytestmark = pytest.mark.django_db


def load_demo() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def test_demo_loads_published_stories_and_a_moderator_who_can_log_in(client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    output = load_demo()

    assert Story.objects.published().count() == len(demo.STORIES)
    email, password = re.search(r"Demo moderator: (\S+) / (\S+)", output).groups()
    response = client.post("/accounts/login/", {"login": email, "password": password})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_loading_twice_changes_nothing_but_the_password(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    load_demo()
    load_demo()

    assert Story.objects.count() == len(demo.STORIES)
    assert Source.objects.count() == len(demo.SOURCES)


def test_demo_sources_are_not_polled(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    load_demo()

    assert not Source.objects.due().exists()
    assert all(source.deactivated_reason for source in Source.objects.all())
