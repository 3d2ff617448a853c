"""The image step end to end: a local Pexels API and image server, real storage, real database."""

import io
import itertools
import logging
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from stories.images import service
from stories.images.models import ImageCandidate, StoryImage
from stories.images.service import choose_story_image
from stories.models import Story
from tests import pexels_server
from tests.factories import SectionFactory, StoryFactory, TagFactory
from tests.httpserver import Reply
from tests.pexels_server import photo_bytes

pytestmark = pytest.mark.django_db

media = pexels_server.media
pexels = pexels_server.pexels

SVG_WITH_SCRIPT = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="1600" height="900" onload="alert(1)">'
    b"<script>alert(document.cookie)</script></svg>"
)


@pytest.fixture
def story():
    return StoryFactory(
        section=SectionFactory(name="Technology", slug="technology"),
        tags=[TagFactory(name="Robots", slug="robots"), TagFactory(name="Toys", slug="toys")],
    )


def choose(story: Story) -> StoryImage:
    record = choose_story_image(story_id=story.pk)
    story.refresh_from_db()
    return record


def assert_no_picture(story: Story, record: StoryImage, media) -> None:
    assert record.state == StoryImage.State.NONE
    assert story.image_url == "" and story.image_srcset == ""
    assert story.status == Story.Status.PUBLISHED
    assert media() == [], "a failed picture left files in storage"


def test_story_gets_a_pexels_photo_stored_as_our_own_copies_with_its_credit(pexels, media, story):
    pexels.add_photo(3573351, photographer="Pavel Danilyuk", alt="A robotic toy against a gradient background")

    record = choose(story)

    assert record.state == StoryImage.State.CHOSEN and record.reason == ""
    assert story.image_url.startswith("/media/images/") and story.image_url.endswith("-1600w.jpg")
    assert (story.image_width, story.image_height) == (1600, 1067)
    assert [entry.split()[-1] for entry in story.image_srcset.split(", ")] == ["480w", "960w", "1600w"]
    assert all(entry.startswith("/media/images/") for entry in story.image_srcset.split(", "))
    assert story.image_alt == "A robotic toy against a gradient background"
    assert story.image_credit == "Pavel Danilyuk"
    assert story.image_credit_url == "https://www.pexels.com/@pavel-danilyuk"
    assert story.image_provider == "Pexels"
    assert story.image_provider_url == "https://www.pexels.com/photo/photo-3573351/"
    assert len(media()) == 4
    with default_storage.open(story.image_url.removeprefix("/media/")) as handle, Image.open(handle) as stored:
        assert stored.format == "JPEG" and stored.size == (1600, 1067)


def test_search_asks_for_landscape_photos_by_tags_with_the_api_key(pexels, media, story):
    pexels.add_photo(1)

    choose(story)

    (search,) = pexels.searches
    assert search["query"] == "Robots Toys"
    assert search["orientation"] == "landscape"
    search_request = next(r for r in pexels.server.requests if r.path.startswith("/v1/search"))
    assert search_request.headers["Authorization"] == pexels_server.API_KEY
    (download,) = pexels.downloads()
    assert "w=1600" in download.path
    assert "Authorization" not in download.headers


def test_section_is_searched_when_the_tags_find_nothing(pexels, media, story):
    pexels.add_photo(7)
    pexels.results["Robots Toys"] = []

    record = choose(story)

    assert [search["query"] for search in pexels.searches] == ["Robots Toys", "Technology"]
    assert record.state == StoryImage.State.CHOSEN
    assert record.search_query == "Technology" and record.search_requests == 2


def test_story_without_labels_gets_no_picture_and_says_why(pexels, media):
    bare = StoryFactory(section=None)

    record = choose(bare)

    assert_no_picture(bare, record, media)
    assert record.reason == "The story has no tags or section to search a picture by."
    assert pexels.searches == []


def test_search_finding_nothing_is_the_reason(pexels, media, story):
    record = choose(story)

    assert_no_picture(story, record, media)
    assert record.reason == "Pexels found no photo for “Robots Toys / Technology”."


def test_a_story_costs_one_search_whatever_runs_follow(pexels, media, story):
    pexels.add_photo(1, body=b"<!DOCTYPE html><html><body>Gone</body></html>")

    first = choose(story)
    second = choose(story)

    assert first.state == second.state == StoryImage.State.NONE
    assert len(pexels.searches) == 1
    assert len(pexels.downloads()) == 1, "a picture known to be broken was downloaded again"
    assert second.search_requests == 1


def test_chosen_picture_is_kept_by_later_runs(pexels, media, story):
    pexels.add_photo(1)
    choose(story)
    image_url = story.image_url

    choose(story)

    assert story.image_url == image_url
    assert len(pexels.searches) == 1 and len(pexels.downloads()) == 1


def test_photo_another_story_shows_is_skipped_for_thirty_days(pexels, media, story):
    pexels.add_photo(1)
    pexels.add_photo(2)
    other = StoryFactory(tags=list(story.tags.all()))
    choose(other)
    assert other.image_candidates.get(is_chosen=True).photo_id == "1"

    choose(story)
    assert story.image_candidates.get(is_chosen=True).photo_id == "2"

    ImageCandidate.objects.filter(story=other).update(chosen_at=timezone.now() - timedelta(days=31))
    third = StoryFactory(tags=list(story.tags.all()))
    choose(third)
    assert third.image_candidates.get(is_chosen=True).photo_id == "1"


def test_broken_first_result_falls_back_to_the_next(pexels, media, story):
    pexels.add_photo(1, body=SVG_WITH_SCRIPT)
    pexels.add_photo(2)

    record = choose(story)

    assert record.state == StoryImage.State.CHOSEN
    assert story.image_candidates.get(is_chosen=True).photo_id == "2"
    assert "SVG" in story.image_candidates.get(photo_id="1").failure


def test_without_an_api_key_the_step_is_skipped_with_a_log_line(http_server, settings, media, story, caplog):
    settings.PEXELS_API_KEY = ""
    caplog.set_level(logging.INFO, logger="stories.images.service")

    record = choose(story)

    assert record.state == StoryImage.State.SKIPPED
    assert "set PEXELS_API_KEY" in record.reason
    assert "No image provider is configured (PEXELS_API_KEY is not set)" in caplog.text
    assert story.image_url == "" and media() == []
    assert http_server.requests == []


@pytest.mark.parametrize(
    ("reply", "reason", "retried"),
    [
        (Reply(status=401, body=b'{"error": "Unauthorized"}'), "Pexels refused the API key (HTTP 401)", False),
        (Reply(status=429, headers={"Retry-After": "120"}), "Pexels answered 429 Too Many Requests", True),
        (Reply(status=503, body=b"upstream down"), "Pexels failed (HTTP 503)", True),
        (Reply(body=b'{"photos": [{"id": 1,', headers={"Content-Type": "application/json"}), "malformed JSON", False),
        (Reply(body=b'{"error": "nope"}', headers={"Content-Type": "application/json"}), '"photos" list', False),
    ],
    ids=["401", "429", "503", "malformed-json", "wrong-shape"],
)
def test_failing_provider_leaves_the_story_published_without_a_picture(pexels, media, story, reply, reason, retried):
    pexels.add_photo(1)
    pexels.fail_next(reply)

    record = choose(story)

    assert_no_picture(story, record, media)
    assert reason in record.reason
    assert (record.retry_at is not None) == retried
    assert (service.retry_delay(record) is not None) == retried
    assert record.searched_at is None, "a failed search must not count as the story's search"


def test_wrong_api_key_is_reported_as_such(pexels, settings, media, story):
    settings.PEXELS_API_KEY = "not-the-key"

    record = choose(story)

    assert "Pexels refused the API key (HTTP 401); check PEXELS_API_KEY" in record.reason


def test_429_pauses_searches_for_every_story_until_the_time_it_names(pexels, media, story):
    pexels.add_photo(1)
    pexels.fail_next(Reply(status=429, headers={"Retry-After": "120"}))
    choose(story)
    other = StoryFactory(tags=list(story.tags.all()))

    record = choose(other)

    assert len(pexels.searches) == 1, "a search was made while the provider asked us to wait"
    assert "request quota is used up until" in record.reason
    assert record.search_requests == 0
    assert 60 < service.retry_delay(record) <= 120


def test_spent_quota_in_the_headers_pauses_searches_before_any_429(pexels, media, story):
    pexels.add_photo(1)
    pexels.remaining = 1
    choose(story)
    assert story.image_url, "the last request of the quota is still answered"
    other = StoryFactory(tags=list(story.tags.all()))

    record = choose(other)

    assert len(pexels.searches) == 1
    assert "request quota is used up" in record.reason


def huge_body(request):
    return Reply(body=(b"\xff" * (1024 * 1024) for _ in range(50)), headers={"Content-Type": "image/jpeg"})


def slow_drip(request):
    return Reply(body=itertools.repeat(b"\xff\xd8", 10_000), chunk_interval=0.2, headers={"Content-Type": "image/jpeg"})


def bomb_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (9000, 8000)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (Reply(body=photo_bytes(2000, 1200)[:20_000], headers={"Content-Type": "image/jpeg"}), "truncated or corrupt"),
        (Reply(body=bomb_png(), headers={"Content-Type": "image/png"}), "a decompression bomb"),
        (Reply(body=SVG_WITH_SCRIPT, headers={"Content-Type": "image/svg+xml"}), "an SVG drawing"),
        (
            Reply(body=b"<!doctype html><html><body>Login</body></html>", headers={"Content-Type": "image/jpeg"}),
            "an HTML page",
        ),
        (huge_body, "sent more than 20971520 bytes"),
        (slow_drip, "did not finish within the 1.5 s deadline"),
        (Reply(status=404, body=b"gone"), "answered 404"),
    ],
    ids=["truncated", "decompression-bomb", "svg-with-script", "html-as-jpeg", "50-megabytes", "slow-drip", "404"],
)
def test_bad_download_leaves_a_reason_and_no_file(pexels, settings, media, story, handler, reason):
    settings.IMAGE_FETCH_DEADLINE_SECONDS = 1.5
    pexels.add_photo(1)
    pexels.serve_photo(1, handler)

    record = choose(story)

    assert_no_picture(story, record, media)
    assert record.reason.startswith("Pexels photo 1: ")
    assert reason in record.reason
    assert reason in story.image_candidates.get(photo_id="1").failure


def rss_with_media(image_url: str, *, credit: str = "") -> bytes:
    credit_element = f"<media:credit>{credit}</media:credit>" if credit else ""
    return (
        '<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>'
        "<title>Harbour Ledger</title><link>https://ledger.example.org/</link>"
        "<item><title>Robot toys sell out</title><link>https://ledger.example.org/robots</link>"
        "<guid>urn:robots</guid><description>Shops ran out of robot toys.</description>"
        f'<media:content url="{image_url}" medium="image" width="1600" height="1000">'
        f"{credit_element}<media:description>A shelf of robot toys</media:description></media:content>"
        "</item></channel></rss>"
    ).encode()


def import_feed(http_server, feed: bytes, **source_fields) -> Story:
    from stories.importing.service import import_source
    from tests.factories import SourceFactory

    http_server.route("/feed.xml", Reply(body=feed, headers={"Content-Type": "application/rss+xml"}))
    source = SourceFactory(name="Harbour Ledger", feed_url=http_server.url("/feed.xml"), **source_fields)
    import_source(source_id=source.pk)
    return Story.objects.get(source=source)


def test_source_that_allows_its_pictures_gets_its_own_picture_copied_and_credited(pexels, media):
    image_url = pexels.server.url("/feed-images/robots.jpg")
    pexels.server.route("/feed-images/robots.jpg", Reply(body=photo_bytes(1600, 1000)))
    story = import_feed(
        pexels.server,
        rss_with_media(image_url, credit="Jane Doe"),
        may_show_images=True,
        homepage_url="https://ledger.example.org/",
    )
    assert story.image_url == "", "the feed's picture must not be hot-linked"

    record = choose(story)

    assert record.state == StoryImage.State.CHOSEN
    assert story.image_url.startswith("/media/images/")
    assert story.image_alt == "A shelf of robot toys"
    assert (story.image_credit, story.image_provider) == ("Jane Doe", "Harbour Ledger")
    assert story.image_provider_url == "https://ledger.example.org/"
    assert pexels.searches == []


def test_source_that_does_not_allow_its_pictures_gets_a_stock_photo(pexels, media):
    feed_image = "/feed-images/robots.jpg"
    pexels.server.route(feed_image, Reply(body=photo_bytes(1600, 1000)))
    pexels.add_photo(5)
    story = import_feed(pexels.server, rss_with_media(pexels.server.url(feed_image)), may_show_images=False)
    story.section = SectionFactory(name="Technology", slug="technology")
    story.save()

    choose(story)

    assert story.image_provider == "Pexels"
    assert not any(request.path == feed_image for request in pexels.server.requests)
    assert not story.image_candidates.filter(provider="source").exists()


def test_moderators_replacement_is_kept_on_relabel(pexels, media, story, django_capture_on_commit_callbacks):
    pexels.add_photo(1)
    pexels.add_photo(2, photographer="Ana Lima", alt="A toy robot on a desk")
    choose(story)
    first_files = media()
    replacement = story.image_candidates.get(photo_id="2")

    with django_capture_on_commit_callbacks(execute=True):
        service.replace_story_image(story=story, candidate=replacement)
    story.refresh_from_db()
    assert story.image_credit == "Ana Lima" and story.image_alt == "A toy robot on a desk"
    assert not set(first_files) & set(media()), "the replaced picture's files stay in storage"

    story.tags.set([TagFactory(name="Ferries", slug="ferries")])  # relabelled
    record = choose(story)

    assert record.moderator_locked
    assert story.image_candidates.get(is_chosen=True).photo_id == "2"
    assert story.image_credit == "Ana Lima"
    assert len(pexels.searches) == 1


def test_moderators_choice_survives_a_reimport_of_the_entry(pexels, media, http_server):
    pexels.add_photo(1)
    pexels.add_photo(2, photographer="Ana Lima")
    feed = rss_with_media("https://elsewhere.example.org/a.jpg")
    story = import_feed(http_server, feed)
    story.section = SectionFactory(name="Technology", slug="technology")
    story.save()
    choose(story)
    service.replace_story_image(story=story, candidate=story.image_candidates.get(photo_id="2"))

    from stories.importing.service import import_source

    http_server.route(
        "/feed.xml",
        Reply(body=feed.replace(b"Shops ran out", b"Shops everywhere ran out"), headers={"Content-Type": "text/xml"}),
    )
    import_source(source_id=story.source_id)
    choose(story)

    assert "everywhere" in story.dek + story.body_html
    assert story.image_credit == "Ana Lima"


def test_moderator_can_remove_the_picture_for_good(pexels, media, story, django_capture_on_commit_callbacks):
    pexels.add_photo(1)
    choose(story)

    with django_capture_on_commit_callbacks(execute=True):
        service.remove_story_image(story=story)
    record = choose(story)

    assert record.state == StoryImage.State.REMOVED and record.moderator_locked
    assert story.image_url == "" and story.image_credit == "" and story.image_width is None
    assert media() == []
    assert not story.image_candidates.filter(is_chosen=True).exists()


def test_unusable_replacement_is_refused_and_the_picture_stays(pexels, media, story):
    pexels.add_photo(1)
    pexels.add_photo(2, body=b"<html>nope</html>")
    choose(story)
    shown = story.image_url

    with pytest.raises(service.ImageChoiceError, match="an HTML page"):
        service.replace_story_image(story=story, candidate=story.image_candidates.get(photo_id="2"))

    story.refresh_from_db()
    assert story.image_url == shown


def test_moderator_asking_for_new_candidates_gets_the_next_page_for_one_more_search(pexels, settings, media, story):
    settings.IMAGE_SEARCH_RESULTS = 2
    for photo_id in range(1, 6):
        pexels.add_photo(photo_id)
    choose(story)
    assert story.image_candidates.count() == 2

    found = service.search_again(story=story)

    assert found == 2
    assert [search["page"] for search in pexels.searches] == ["1", "2"]
    assert sorted(story.image_candidates.values_list("photo_id", flat=True)) == ["1", "2", "3", "4"]
    assert StoryImage.objects.get(story=story).search_requests == 2
    assert story.image_candidates.get(is_chosen=True).photo_id == "1", "asking for candidates changes no picture"


def test_deleting_a_story_deletes_its_stored_pictures(pexels, media, story, django_capture_on_commit_callbacks):
    pexels.add_photo(1)
    choose(story)
    assert media()

    with django_capture_on_commit_callbacks(execute=True):
        story.delete()

    assert media() == []


def test_the_pipeline_step_after_labelling_gives_the_story_its_picture(pexels, media, story):
    from stories.tasks import advance_story_task

    pexels.add_photo(1)
    Story.objects.filter(pk=story.pk).resume_pipeline_after(Story.PipelineState.LABELLED)

    advance_story_task.apply(args=[story.pk]).get()

    story.refresh_from_db()
    assert story.image_provider == "Pexels"
    assert story.pipeline_state == Story.PipelineState.ILLUSTRATED
    assert story.pipeline_due_at is None
