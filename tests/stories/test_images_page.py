"""What readers see of a story's picture: our own copies in srcset, alt text, the credit, fixed queries."""

import re

import pytest

from stories.images.models import ImageCandidate
from stories.images.service import choose_story_image
from stories.models import Story
from tests import pexels_server
from tests.conftest import view_count_queries
from tests.factories import SectionFactory, SourceFactory, StoryFactory, TagFactory
from tests.httpserver import Reply
from tests.pexels_server import photo_bytes

pytestmark = pytest.mark.django_db

media = pexels_server.media
pexels = pexels_server.pexels


@pytest.fixture
def page_settings(settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 0


def illustrated_story(pexels, photo_id: int, **fields) -> Story:
    pexels.add_photo(photo_id, photographer="Pavel Danilyuk", alt="Close-up of a robotic toy & its <shadow>")
    pexels.results[f"Robots {photo_id}"] = [photo_id]
    story = StoryFactory(
        section=SectionFactory(name="Technology", slug="technology"),
        tags=[TagFactory(name=f"Robots {photo_id}", slug=f"robots-{photo_id}")],
        **fields,
    )
    choose_story_image(story_id=story.pk)
    story.refresh_from_db()
    return story


def image_urls(html: str) -> list[str]:
    """Every address the page makes a browser load a picture from."""
    urls = re.findall(r'<(?:img|source)\b[^>]*?\ssrc="([^"]+)"', html)
    for srcset in re.findall(r'\ssrcset="([^"]+)"', html):
        urls += [entry.strip().split()[0] for entry in srcset.split(",")]
    return urls


def test_story_page_shows_our_copies_with_srcset_size_alt_and_linked_credit(client, pexels, media, page_settings):
    story = illustrated_story(pexels, 3573351)

    html = client.get(story.get_absolute_url()).content.decode()

    hero = html.split('<figure class="hero">', 1)[1].split("</figure>", 1)[0]
    assert f'<source type="image/webp" srcset="{story.image_srcset}"' in hero
    assert 'sizes="(min-width: 46rem) 44rem, calc(100vw - 2rem)"' in hero
    assert re.search(r"-480w\.webp 480w, \S+-960w\.webp 960w, \S+-1600w\.webp 1600w", hero)
    assert f'<img src="{story.image_url}" alt="Close-up of a robotic toy &amp; its &lt;shadow&gt;"' in hero
    assert 'width="1600" height="1067"' in hero
    assert 'loading="lazy"' not in hero
    assert (
        'Photo by <a href="https://www.pexels.com/@pavel-danilyuk" rel="noopener">Pavel Danilyuk</a> '
        'on <a href="https://www.pexels.com/photo/photo-3573351/" rel="noopener">Pexels</a>'
    ) in hero


def test_readers_browsers_load_pictures_only_from_us(client, pexels, media, page_settings):
    story = illustrated_story(pexels, 11)

    for path in (story.get_absolute_url(), "/"):
        urls = image_urls(client.get(path).content.decode())
        assert urls, f"{path} shows no picture"
        assert all(url.startswith("/media/images/") for url in urls), urls


def test_link_preview_uses_our_jpeg_copy(client, pexels, media, page_settings):
    story = illustrated_story(pexels, 12)

    html = client.get(story.get_absolute_url()).content.decode()

    assert f'<meta property="og:image" content="http://testserver{story.image_url}">' in html
    assert story.image_url.endswith(".jpg")


def test_source_picture_without_credit_is_credited_to_the_source(client, pexels, media, page_settings):
    pexels.server.route("/feed/photo.jpg", Reply(body=photo_bytes(1200, 700)))
    source = SourceFactory(name="Harbour Ledger", may_show_images=True, homepage_url="https://ledger.example.org/")
    story = StoryFactory(source=source)
    ImageCandidate.objects.remember_source_image(
        story=story, url=pexels.server.url("/feed/photo.jpg"), alt="The harbour at dawn"
    )
    choose_story_image(story_id=story.pk)

    html = client.get(story.get_absolute_url()).content.decode()

    assert (
        '<figcaption class="credit">Photo: <a href="https://ledger.example.org/" rel="noopener">Harbour Ledger</a>'
    ) in html
    assert 'alt="The harbour at dawn"' in html


def test_cards_use_srcset_and_lazy_load_below_the_first_row(client, pexels, media, page_settings):
    stories = [illustrated_story(pexels, photo_id) for photo_id in range(21, 26)]
    StoryFactory(section=SectionFactory(name="Sport", slug="sport"))  # the newest, and without a picture

    html = client.get("/").content.decode()

    cards = html.split('<article class="card">')[1:]
    assert len(cards) == 6
    assert '<span class="placeholder">Sport</span>' in cards[0] and "<img" not in cards[0]
    for card in cards[1:]:
        assert '<source type="image/webp" srcset="/media/images/' in card
        assert re.search(r'<img src="/media/images/\S+\.jpg" alt=""', card)
        assert 'width="1600" height="1067"' in card
    assert ['loading="lazy"' in card for card in cards[1:]] == [False, False, True, True, True]
    assert {story.image_url for story in stories} <= set(image_urls(html))


def test_story_page_with_a_picture_still_takes_three_queries(
    client, pexels, media, page_settings, django_assert_num_queries
):
    story = illustrated_story(pexels, 31)
    client.get(StoryFactory().get_absolute_url())  # the moderation rules, read once a while

    # the story, its tags and the first page of comments: the picture costs none
    with django_assert_num_queries(3 + view_count_queries()):
        response = client.get(story.get_absolute_url())
    assert "srcset=" in response.content.decode()


def test_list_with_pictures_still_takes_two_queries(client, pexels, media, page_settings, django_assert_num_queries):
    for photo_id in range(41, 45):
        illustrated_story(pexels, photo_id)

    # the cards' rows and the section menu
    with django_assert_num_queries(2):
        response = client.get("/")
    assert response.content.decode().count("srcset=") == 4
