"""`manage.py load_demo`: demo content for a new site, safe to load again."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from comments.models import Comment
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


def test_demo_shows_a_conversation_with_replies_by_several_readers(client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    load_demo()

    published = Comment.objects.visible()
    discussed = Story.objects.filter(pk__in=published.values("story"))
    assert discussed.count() == 2
    for story in discussed:
        on_story = published.filter(story=story)
        assert story.comment_count == on_story.count() >= 3
        assert on_story.filter(parent__isnull=False).exists()
        assert on_story.values("author").distinct().count() >= 2
        assert on_story.filter(created_at__gt=story.published_at, created_at__lt=timezone.now()).count() == (
            story.comment_count
        )

    story = discussed.first()
    html = client.get(story.get_absolute_url()).content.decode()
    for comment in published.filter(story=story):
        assert comment.body_html in html


def test_loading_twice_keeps_one_conversation(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    load_demo()
    first = {story.slug: story.comment_count for story in Story.objects.all()}
    comments = Comment.objects.count()

    load_demo()

    assert Comment.objects.count() == comments
    assert {story.slug: story.comment_count for story in Story.objects.all()} == first


def test_demo_pictures_are_credited_to_the_demo(client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    load_demo()
    story = Story.objects.published().first()

    html = client.get(story.get_absolute_url()).content.decode()

    assert '<figcaption class="credit">Photo: Newsreader demo</figcaption>' in html
    assert " on Newsreader" not in html
