"""Saving stories for later and the "Saved" reading list."""

from datetime import timedelta

import pytest
from django.utils import timezone

from follows import services
from follows.models import SavedStory
from tests.factories import StoryFactory


def test_reader_saves_a_story_from_its_page_and_comes_back_to_it(client, reader):
    story = StoryFactory(title="Night trains return")
    client.force_login(reader)

    response = client.post(f"/saved/{story.slug}/add/", {"next": f"{story.get_absolute_url()}#follow"})

    assert response.status_code == 302
    assert response["Location"] == f"{story.get_absolute_url()}#follow"
    assert SavedStory.objects.filter(reader=reader, story=story).exists()
    assert "Remove from saved" in client.get(story.get_absolute_url()).content.decode()


def test_saving_twice_keeps_one_and_removing_twice_is_harmless(client, reader):
    story = StoryFactory()
    client.force_login(reader)

    client.post(f"/saved/{story.slug}/add/")
    client.post(f"/saved/{story.slug}/add/")
    assert SavedStory.objects.filter(reader=reader).count() == 1

    client.post(f"/saved/{story.slug}/remove/")
    response = client.post(f"/saved/{story.slug}/remove/")
    assert response.status_code == 302
    assert not SavedStory.objects.exists()


def test_unpublished_stories_cannot_be_saved(client, reader):
    draft = StoryFactory(status="draft")
    client.force_login(reader)

    assert client.post(f"/saved/{draft.slug}/add/").status_code == 404


def test_saving_counts_towards_the_hourly_limit(client, reader, settings):
    settings.FOLLOWS_CHANGES_PER_HOUR = 1
    story = StoryFactory()
    client.force_login(reader)
    client.post(f"/saved/{story.slug}/add/")

    response = client.post(f"/saved/{story.slug}/remove/")

    assert response.status_code == 429
    assert SavedStory.objects.filter(reader=reader).exists()


def test_saved_page_lists_the_readers_saved_stories_latest_first(client, reader):
    older, newer, hidden, not_saved = StoryFactory(), StoryFactory(), StoryFactory(), StoryFactory()
    for story in (older, newer, hidden):
        services.save_story(reader=reader, story=story)
    SavedStory.objects.filter(story=older).update(saved_at=timezone.now() - timedelta(days=1))
    hidden.status = "hidden"
    hidden.save()
    client.force_login(reader)

    response = client.get("/saved/")

    assert [saved.story_id for saved in response.context["page"].object_list] == [newer.pk, older.pk]
    html = response.content.decode()
    assert not_saved.title not in html
    assert f'aria-label="Remove {newer.title} from saved"' in html


@pytest.mark.parametrize("count", [1, 30])
def test_saved_page_query_count_is_flat(client, reader, django_assert_num_queries, count):
    for story in StoryFactory.create_batch(count):
        services.save_story(reader=reader, story=story)
    client.force_login(reader)

    # the reader, the count for the pages, one page of saved stories with their stories, and the header's
    # count of new replies to the reader's comments
    with django_assert_num_queries(4):
        response = client.get("/saved/")
    assert response.status_code == 200


def test_saved_page_needs_a_signed_in_reader(client):
    assert client.get("/saved/")["Location"].startswith("/accounts/login/")
