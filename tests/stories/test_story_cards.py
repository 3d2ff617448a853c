"""Story cards are rendered once per version of what they show, kept, and joined into the list."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from comments.models import Comment
from stories.models import Source, Story
from tests.factories import CommentFactory, SectionFactory, SourceFactory, StoryFactory

pytestmark = pytest.mark.django_db

CARD_TEMPLATE = "stories/_story_card.html"


@pytest.fixture(autouse=True)
def no_page_cache(settings):
    """Every request renders its page, so that what the cards cost is what is seen."""
    settings.VISITOR_PAGE_CACHE_SECONDS = 0


def cards_rendered(response) -> int:
    return [template.name for template in response.templates].count(CARD_TEMPLATE)


def test_each_card_is_rendered_once_and_then_joined_from_the_cache(client):
    StoryFactory.create_batch(4)

    first = client.get("/")
    second = client.get("/")

    assert cards_rendered(first) == 4
    assert cards_rendered(second) == 0
    assert second.content == first.content


def test_only_a_changed_story_has_its_card_rendered_again(client):
    story, *_ = StoryFactory.create_batch(3)
    client.get("/")

    story.title = "Night ferries return to the fjord"
    story.save()
    response = client.get("/")

    assert cards_rendered(response) == 1
    assert "Night ferries return to the fjord" in response.content.decode()


@pytest.mark.parametrize(
    "change, shown",
    [
        ({"title": "Tram depot opens its doors"}, "Tram depot opens its doors"),
        ({"dek": "The depot shows its oldest cars."}, "The depot shows its oldest cars."),
        ({"image_url": "/media/depot.jpg"}, 'src="/media/depot.jpg"'),
        ({"ai_labelled": True}, "AI-labelled"),
        ({"reading_minutes": 7}, "7 min"),
    ],
)
def test_a_card_shows_a_change_however_the_story_was_written(client, change, shown):
    story = StoryFactory(image_url="/media/harbour.jpg", ai_labelled=False)
    client.get("/")

    # An update that bypasses save() and its signals, as bulk writes do.
    Story.objects.filter(pk=story.pk).update(**change)

    assert shown in client.get("/").content.decode()


def test_a_card_shows_a_renamed_section_and_source(client):
    story = StoryFactory(
        section=SectionFactory(name="Transport", slug="transport"), source=SourceFactory(name="Old Post")
    )
    client.get("/")

    story.section.name = "Getting around"
    story.section.save()
    Source.objects.filter(pk=story.source_id).update(name="New Courier")
    html = client.get("/").content.decode()

    assert "Getting around" in html and "Transport<" not in html
    assert "New Courier" in html and "Old Post" not in html


def test_comment_counts_on_cards_follow_the_comments(client):
    story = StoryFactory()
    assert "0 comments" in client.get("/").content.decode()

    comment = CommentFactory(story=story)
    assert "1 comment<" in client.get("/").content.decode()

    CommentFactory(story=story, parent=comment)
    assert "2 comments" in client.get("/").content.decode()
    assert Comment.objects.filter(story=story).count() == 2


def test_a_kept_card_links_back_with_the_filters_of_the_list_showing_it(client):
    source = SourceFactory(slug="tribune")
    story = StoryFactory(section=SectionFactory(slug="sport"), source=source)
    url = story.get_absolute_url()

    unfiltered = client.get("/").content.decode()
    by_section = client.get("/", {"section": "sport"})
    by_source = client.get("/", {"source": "tribune", "q": "harbours"}).content.decode()

    assert f'href="{url}"' in unfiltered and f'href="{url}?' not in unfiltered
    assert cards_rendered(by_section) == 0
    assert f'href="{url}?section=sport"' in by_section.content.decode()
    assert f'href="{url}?source=tribune&amp;q=harbours"' in by_source


def test_only_the_first_three_pictures_load_at_once(client):
    now = timezone.now()
    for minutes in range(5):
        StoryFactory(image_url=f"/media/picture-{minutes}.jpg", published_at=now - timedelta(minutes=minutes))

    for _ in range(2):  # rendered, then joined from the cache
        images = re.findall(r"<img [^>]*>", client.get("/").content.decode())
        assert ['loading="lazy"' in image for image in images] == [False, False, False, True, True]
