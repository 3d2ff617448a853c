"""Response headers: signed-in readers' pages are never stored by a cache, and HEAD answers like GET."""

import pytest

from tests.factories import StoryFactory

pytestmark = pytest.mark.django_db

PRIVATE = "private, no-store"


@pytest.fixture
def story(db):
    return StoryFactory()


@pytest.mark.parametrize("path", ["/", "story", "/comments/my/comments/", "/comments/my/export.json"])
def test_signed_in_pages_must_not_be_stored(client, reader, story, path):
    client.force_login(reader)

    response = client.get(story.get_absolute_url() if path == "story" else path)

    assert response.status_code == 200
    assert response["Cache-Control"] == PRIVATE


def test_export_is_private_to_its_reader(client, reader):
    client.force_login(reader)

    response = client.get("/comments/my/export.json")

    assert response["Cache-Control"] == PRIVATE
    assert response["Content-Disposition"].startswith("attachment;")


@pytest.mark.parametrize("path", ["/", "story"])
def test_visitors_pages_keep_their_headers(client, story, path):
    response = client.get(story.get_absolute_url() if path == "story" else path)

    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


@pytest.mark.parametrize("path", ["/", "story", "/robots.txt"])
def test_head_answers_like_get_without_a_body(client, story, settings, path):
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    path = story.get_absolute_url() if path == "story" else path

    head = client.head(path)
    get = client.get(path)

    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head["Content-Type"] == get["Content-Type"]


def test_head_of_the_front_page_from_the_page_cache_has_no_body(client, story, settings, redis_client):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    client.get("/")

    head = client.head("/")

    assert head.status_code == 200
    assert head["X-Page-Cache"] == "hit"
    assert head.content == b""
