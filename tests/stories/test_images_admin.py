"""A moderator replaces or removes a story's picture in the admin, choosing among the candidates found."""

import pytest
from django.contrib.auth.models import Group

from stories.images.models import StoryImage
from stories.images.service import choose_story_image
from tests import pexels_server
from tests.factories import SectionFactory, StoryFactory, TagFactory, UserFactory

pytestmark = pytest.mark.django_db

media = pexels_server.media
pexels = pexels_server.pexels


@pytest.fixture
def moderator(client):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    client.force_login(user)
    return user


@pytest.fixture
def illustrated(pexels, media):
    pexels.add_photo(1, photographer="Pavel Danilyuk")
    pexels.add_photo(2, photographer="Ana Lima", alt="A toy robot on a desk")
    story = StoryFactory(section=SectionFactory(name="Technology", slug="technology"), tags=[TagFactory(name="Robots")])
    choose_story_image(story_id=story.pk)
    story.refresh_from_db()
    return story


def chooser(story) -> str:
    return f"/admin/stories/storyimage/{story.pk}/choose/"


def test_moderator_sees_the_candidates_and_why_each_is_there(client, moderator, illustrated):
    response = client.get(chooser(illustrated))

    html = response.content.decode()
    assert response.status_code == 200
    assert "<strong>Shown now:</strong> Pexels by Pavel Danilyuk (2400 x 1600)" in html
    assert "Pexels by Ana Lima (2400 x 1600)" in html
    assert "A toy robot on a desk" in html


def test_moderator_replaces_the_picture_and_later_runs_keep_it(client, moderator, illustrated, pexels):
    second = illustrated.image_candidates.get(photo_id="2")

    response = client.post(chooser(illustrated), {"action": "show", "candidate": second.pk}, follow=True)

    assert "later runs keep it" in response.content.decode()
    choose_story_image(story_id=illustrated.pk)
    illustrated.refresh_from_db()
    assert illustrated.image_credit == "Ana Lima"
    record = StoryImage.objects.get(story=illustrated)
    assert record.moderator_locked and record.decided_by == moderator
    assert len(pexels.searches) == 1


def test_moderator_removes_the_picture(client, moderator, illustrated):
    client.post(chooser(illustrated), {"action": "remove"})

    illustrated.refresh_from_db()
    assert illustrated.image_url == ""
    assert StoryImage.objects.get(story=illustrated).state == StoryImage.State.REMOVED


def test_bulk_action_takes_the_moderator_to_the_chooser(client, moderator, illustrated):
    response = client.post(
        "/admin/stories/story/", {"action": "replace_or_remove_picture", "_selected_action": [illustrated.pk]}
    )

    assert response.status_code == 302
    assert response["Location"] == chooser(illustrated)


def test_story_page_in_admin_shows_the_pictures_record_and_candidates(client, moderator, illustrated):
    html = client.get(f"/admin/stories/story/{illustrated.pk}/change/").content.decode()

    assert "Replace or remove the picture…" in html
    assert "pexels photo 2 by Ana Lima" in html


def test_reader_without_moderation_rights_cannot_choose_pictures(client, illustrated):
    client.force_login(UserFactory(is_staff=True))

    response = client.post(chooser(illustrated), {"action": "remove"})

    assert response.status_code == 302
    illustrated.refresh_from_db()
    assert illustrated.image_url != ""
