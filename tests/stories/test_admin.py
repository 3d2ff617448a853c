"""Django admin for sources and stories, as a moderator uses it."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from stories.models import Source, Story
from tests.factories import SourceFactory, StoryFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def moderator(client):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    client.force_login(user)
    return user


def test_moderator_finds_a_story_by_title_or_source(client, moderator):
    StoryFactory(title="Ferries switch to shore power", source=SourceFactory(name="Northwind Tribune"))
    StoryFactory(title="Chip school opens")

    by_title = client.get("/admin/stories/story/", {"q": "shore power"})
    by_source = client.get("/admin/stories/story/", {"q": "Northwind"})

    assert by_title.status_code == 200
    assert [story.title for story in by_title.context["cl"].result_list] == ["Ferries switch to shore power"]
    assert [story.title for story in by_source.context["cl"].result_list] == ["Ferries switch to shore power"]


def test_moderator_cannot_manage_users_or_sources(client, moderator):
    assert client.get("/admin/auth/user/").status_code == 403
    assert client.get("/admin/stories/source/add/").status_code == 403


def test_moderator_hides_a_story_with_a_bulk_action(client, moderator):
    story = StoryFactory()

    response = client.post("/admin/stories/story/", {"action": "hide", "_selected_action": [story.pk]}, follow=True)

    story.refresh_from_db()
    assert story.status == "hidden"
    assert "1 stories hidden." in response.content.decode()


def test_import_now_queues_the_selected_sources(admin_client, django_capture_on_commit_callbacks):
    source = SourceFactory()

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            "/admin/stories/source/", {"action": "import_now", "_selected_action": [source.pk]}, follow=True
        )

    assert len(callbacks) == 1
    assert "1 sources queued for import" in response.content.decode()
    source.refresh_from_db()
    assert source.import_queued_at is not None


def test_story_admin_shows_where_the_story_is_in_the_pipeline(admin_client):
    story = StoryFactory()
    Story.objects.filter(pk=story.pk).resume_pipeline_after(Story.PipelineState.LABELLED)
    Story.objects.filter(pk=story.pk).update(pipeline_error="The picture step failed: provider answered 503")

    html = admin_client.get(f"/admin/stories/story/{story.pk}/change/").content.decode()

    assert "Background pipeline" in html
    assert "provider answered 503" in html
    assert "Labelled" in html


def test_source_admin_shows_health(admin_client):
    source = SourceFactory(name="Harbour Ledger")
    Source.objects.filter(pk=source.pk).update(consecutive_errors=3, last_error="The feed is gone (HTTP 410)")

    html = admin_client.get("/admin/stories/source/").content.decode()

    assert "The feed is gone (HTTP 410)" in html


def test_opml_round_trip(tmp_path):
    SourceFactory(name="Harbour Ledger", feed_url="https://ledger.example.org/feed.xml")
    exported = tmp_path / "sources.opml"
    call_command("opml", "export", str(exported))
    Source.objects.all().delete()

    call_command("opml", "import", str(exported))

    assert list(Source.objects.values_list("name", "feed_url")) == [
        ("Harbour Ledger", "https://ledger.example.org/feed.xml")
    ]


def test_opml_upload_in_admin_reports_a_broken_file(admin_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = admin_client.post(
        "/admin/stories/source/import-opml/", {"file": SimpleUploadedFile("x.opml", b"<html>not opml")}
    )

    assert response.status_code == 200
    assert "not valid OPML" in response.content.decode() or "not OPML" in response.content.decode()


def test_opml_with_entity_bomb_is_refused():
    from stories.importing.opml import OPMLError, import_opml

    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><opml>&b;</opml>'
    with pytest.raises(OPMLError):
        import_opml(bomb)
