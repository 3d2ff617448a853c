"""A reader's follows, saved stories and digest settings in "Your data": exported, and deleted with the account."""

import json

from django.contrib.auth import get_user_model

from follows import digests, services
from follows.models import DigestedStory, DigestSettings, Follow, SavedStory
from tests.conftest import PASSWORD
from tests.factories import StoryFactory, UserFactory


def test_export_includes_follows_saved_stories_and_digest_settings(client, reader, newsroom):
    story = StoryFactory(title="Harbour crane removed")
    services.follow(reader=reader, kind="section", slug="sport")
    services.follow(reader=reader, kind="region", slug="norway")
    services.save_story(reader=reader, story=story)
    services.digest_settings_update(reader=reader, frequency="weekly", hour=18, time_zone="Europe/Oslo")
    services.follow(reader=UserFactory(), kind="tag", slug="tides")
    client.force_login(reader)

    data = json.loads(client.get("/comments/my/export.json").content)

    assert [(f["kind"], f["name"]) for f in data["follows"]] == [("section", "Sport"), ("region", "Europe / Norway")]
    saved_at = SavedStory.objects.get(reader=reader).saved_at.isoformat()
    assert data["saved_stories"] == [
        {"title": "Harbour crane removed", "url": story.get_absolute_url(), "saved_at": saved_at}
    ]
    assert data["digest"] == {"frequency": "weekly", "hour": 18, "time_zone": "Europe/Oslo", "last_sent_at": None}


def test_export_of_a_reader_without_any_is_empty(client, reader):
    client.force_login(reader)

    data = json.loads(client.get("/comments/my/export.json").content)

    assert (data["follows"], data["saved_stories"], data["digest"]) == ([], [], None)


def test_deleting_the_account_deletes_follows_saved_stories_and_digests(client, reader, newsroom):
    story = StoryFactory(section=newsroom.sport)
    services.follow(reader=reader, kind="section", slug="sport")
    services.save_story(reader=reader, story=story)
    DigestSettings.objects.create(reader=reader, frequency="daily", next_due_at=story.published_at)
    digests.send_due_digests()
    assert DigestedStory.objects.filter(reader=reader).exists()
    someone_else = UserFactory()
    services.follow(reader=someone_else, kind="section", slug="sport")
    client.force_login(reader)

    response = client.post("/comments/my/delete-account/", {"confirmation": PASSWORD})

    assert response.status_code == 302
    assert not get_user_model().objects.filter(pk=reader.pk).exists()
    for model in (Follow, SavedStory, DigestSettings, DigestedStory):
        assert not model.objects.filter(**{"reader_id": reader.pk}).exists(), model
    assert Follow.objects.filter(reader=someone_else).exists()
