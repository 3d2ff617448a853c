"""The visitor page cache: a hit is the page a visitor would have been rendered, headers included,
served before sessions and views; other pages never touch it (signed-in readers reach the same entries
below authentication: tests/stories/test_shared_pages.py); Redis going away turns it off instead of
breaking pages."""

import pytest
import redis
from django.test import Client

from stories import localpages, pagecache, viewcounts, views
from stories.models import Story
from stories.tasks import flush_story_views
from tests.factories import RegionFactory, StoryFactory, TagFactory
from tests.stories.test_page_copies import close_subscriptions, wait_until

pytestmark = pytest.mark.django_db

# Headers that belong to one response: a hit answers with its own.
PER_RESPONSE = {"Date", "Content-Length", "X-Page-Cache", "Set-Cookie", "X-Request-ID"}


@pytest.fixture(autouse=True)
def page_cache_on(settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60


def visitor(address: str = "192.0.2.1") -> Client:
    return Client(REMOTE_ADDR=address, HTTP_USER_AGENT="test browser")


def cut_off_from_invalidations(redis_client) -> None:
    """Close this process's subscription to page invalidations, as Redis going away does, and wait until
    the process has noticed."""
    assert len(localpages.copies), "the page was not copied to begin with"
    close_subscriptions(redis_client)
    wait_until(lambda: len(localpages.copies) == 0, what="the listener did not notice its connection closing")


def test_a_hit_answers_with_the_rendered_page_and_its_headers(django_assert_num_queries):
    story = StoryFactory()
    rendered = visitor().get(story.get_absolute_url())

    with django_assert_num_queries(0):  # the same reader: this view was counted already
        hit = visitor().get(story.get_absolute_url())

    assert hit["X-Page-Cache"] == "hit"
    assert hit.content == rendered.content
    assert int(hit["Content-Length"]) == len(rendered.content)
    own_headers = {name: value for name, value in rendered.items() if name not in PER_RESPONSE}
    assert {name: value for name, value in hit.items() if name not in PER_RESPONSE} == own_headers
    assert hit["Content-Security-Policy"] and hit["X-Frame-Options"] == "DENY"


def test_the_list_and_its_filters_are_kept_per_address():
    StoryFactory(title="Tram lines reopen")

    visitor().get("/")
    visitor().get("/?q=tram")

    assert visitor().get("/")["X-Page-Cache"] == "hit"
    filtered = visitor().get("/?q=tram")
    assert filtered["X-Page-Cache"] == "hit"
    assert b"Tram lines reopen" in filtered.content
    assert "X-Page-Cache" not in visitor().get("/?q=ferry")


def test_a_request_with_a_session_cookie_is_rendered_a_fresh_page():
    story = StoryFactory()
    visitor().get(story.get_absolute_url())
    reader = visitor()
    reader.cookies["sessionid"] = "left-over"  # a session cookie may outlive the sign-in

    response = reader.get(story.get_absolute_url())

    assert response.status_code == 200
    assert "X-Page-Cache" not in response


def test_pages_of_other_views_are_never_kept():
    visitor().get("/accounts/login/")

    assert "X-Page-Cache" not in visitor().get("/accounts/login/")


@pytest.mark.parametrize("copies_per_process", [0, 500], ids=["from Redis", "from the process's copy"])
def test_every_hit_counts_its_readers_view_once_a_day(redis_client, settings, copies_per_process):
    settings.PAGE_COPIES_PER_PROCESS = copies_per_process
    story = StoryFactory()

    visitor("192.0.2.1").get(story.get_absolute_url())  # rendered: counted by the view
    visitor("192.0.2.2").get(story.get_absolute_url())  # first hit: the page's story is learnt
    visitor("192.0.2.3").get(story.get_absolute_url())  # later hits: counted beside the lookup, or sent
    visitor("192.0.2.3").get(story.get_absolute_url())  # the same reader again: not counted

    localpages.send_views()  # what the process's listener does every second
    flush_story_views()
    assert Story.objects.get(pk=story.pk).view_count == 3


@pytest.mark.parametrize("path", ["/", "story", "thread"])
def test_redis_going_away_turns_the_cache_off_and_pages_still_render(redis_client, monkeypatch, path):
    story = StoryFactory(title="Still here")
    url = {"/": "/", "story": story.get_absolute_url(), "thread": f"/comments/{story.slug}/thread/"}[path]
    visitor().get(url)
    assert visitor().get(url)["X-Page-Cache"] == "hit"
    gone = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(viewcounts, "_redis_client", gone)
    cut_off_from_invalidations(redis_client)

    response = visitor().get(url)

    assert response.status_code == 200
    assert "X-Page-Cache" not in response
    pagecache.bump_generation()  # a change while Redis is away is logged, not raised


def test_a_change_while_the_page_renders_leaves_the_stored_copy_out_of_date(monkeypatch):
    """The copy carries the generation read before rendering, not after."""
    story = StoryFactory()
    render = views.render

    def render_while_a_comment_arrives(*args, **kwargs):
        response = render(*args, **kwargs)
        pagecache.bump_generation()
        return response

    monkeypatch.setattr(views, "render", render_while_a_comment_arrives)
    visitor().get(story.get_absolute_url())
    monkeypatch.setattr(views, "render", render)

    assert "X-Page-Cache" not in visitor().get(story.get_absolute_url())


# --- What a change invalidates ------------------------------------------------------------------


def cached(path: str) -> bool:
    return visitor().get(path).get("X-Page-Cache") == "hit"


def keep(*paths: str) -> None:
    for path in paths:
        visitor().get(path)
        assert cached(path), path


def test_a_new_comment_invalidates_its_story_and_thread_not_other_pages(django_capture_on_commit_callbacks):
    from comments import services
    from comments.models import ModerationRule
    from tests.factories import UserFactory

    ModerationRule.objects.all().delete()
    discussed, other = StoryFactory(), StoryFactory()
    thread = f"/comments/{discussed.slug}/thread/"
    keep("/", discussed.get_absolute_url(), thread, other.get_absolute_url())

    with django_capture_on_commit_callbacks(execute=True):
        services.comment_create(story=discussed, author=UserFactory(), body="Shore power is overdue.")

    assert not cached(discussed.get_absolute_url())
    fresh_thread = visitor().get(thread)
    assert "X-Page-Cache" not in fresh_thread and b"Shore power is overdue." in fresh_thread.content
    assert cached(other.get_absolute_url())
    assert cached("/")  # its comment count catches up within LIST_PAGE_CACHE_SECONDS


@pytest.mark.django_db(transaction=True)  # the post's own transaction commits inside the request, as in production
def test_a_posted_comment_invalidates_its_discussion_and_its_authors_parts_in_one_round_trip(redis_client, monkeypatch):
    from comments.models import ModerationRule
    from tests.factories import UserFactory

    ModerationRule.objects.all().delete()
    story, author = StoryFactory(), UserFactory()
    keep(story.get_absolute_url())
    reader = Client()
    reader.force_login(author)
    announced = []
    announce = localpages.queue_announcement
    monkeypatch.setattr(
        localpages,
        "queue_announcement",
        lambda pipeline, scopes: announced.append(scopes) or announce(pipeline, scopes),
    )

    reader.post(f"/comments/{story.slug}/post/", {"body": "The night ferry deserves a second boat."})

    assert [sorted(scopes) for scopes in announced] == [
        sorted([pagecache.discussion_scope(story.slug), pagecache.reader_scope(author.pk)])
    ]
    assert b"The night ferry deserves a second boat." in visitor().get(story.get_absolute_url()).content


def test_a_new_story_invalidates_the_lists_not_other_stories_pages():
    shown = StoryFactory()
    keep("/", shown.get_absolute_url())

    StoryFactory(title="Night trams return", source=shown.source, section=shown.section)

    fresh_list = visitor().get("/")
    assert "X-Page-Cache" not in fresh_list and b"Night trams return" in fresh_list.content
    assert cached(shown.get_absolute_url())


def test_a_story_joining_anothers_coverage_invalidates_that_page_too():
    first = StoryFactory()
    keep(first.get_absolute_url())

    StoryFactory(duplicate_of=first, title="The same news from elsewhere")

    assert b"The same news from elsewhere" in visitor().get(first.get_absolute_url()).content


def test_a_changed_story_invalidates_the_pages_that_list_it_as_other_coverage():
    first = StoryFactory()
    second = StoryFactory(duplicate_of=first)
    visitor().get(second.get_absolute_url())  # rendered: learns that the page shows `first` beside it
    keep(second.get_absolute_url())

    first.title = "A corrected headline"
    first.save()

    assert b"A corrected headline" in visitor().get(second.get_absolute_url()).content


def test_an_import_bookkeeping_its_source_leaves_pages_alone_and_a_rename_does_not():
    story = StoryFactory()
    keep("/", story.get_absolute_url())
    source = story.source

    source.consecutive_errors = 1
    source.save(update_fields=["consecutive_errors", "last_fetched_at"])
    assert cached("/") and cached(story.get_absolute_url())

    source.name = "The Harbour Courier"
    source.save(update_fields=["name"])
    assert not cached("/") and not cached(story.get_absolute_url())


def test_labelling_a_story_with_a_new_tag_and_region_invalidates_its_pages_and_lists_only():
    from stories.labelling.base import RegionGuess
    from stories.labelling.service import region_for, tags_named

    labelled, other = StoryFactory(), StoryFactory()
    keep("/", labelled.get_absolute_url(), other.get_absolute_url())

    labelled.region = region_for(RegionGuess(continent="Oceania", country="Tuvalu"))
    labelled.save()
    labelled.tags.set(tags_named(["Sea walls"]))

    assert cached(other.get_absolute_url())
    page = visitor().get(labelled.get_absolute_url())
    assert "X-Page-Cache" not in page and b"Sea walls" in page.content and b"Tuvalu" in page.content
    assert not cached("/")


def test_a_renamed_tag_or_region_invalidates_every_page():
    tag, region = TagFactory(name="Sea walls"), RegionFactory(name="Far North")
    story = StoryFactory(tags=[tag], region=region)
    keep("/", story.get_absolute_url())

    tag.name = "Coastal defences"
    tag.save()
    assert not cached("/") and not cached(story.get_absolute_url())

    keep("/", story.get_absolute_url())
    region.name = "The Far North"
    region.save()
    assert not cached("/") and not cached(story.get_absolute_url())


def test_a_change_inside_a_transaction_invalidates_once_it_commits(django_capture_on_commit_callbacks):
    from django.db import transaction

    story = StoryFactory()
    keep("/", story.get_absolute_url())

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        story.title = "Ferry timetable triples"
        story.save()
        story.tags.add(TagFactory())
        # Rendered now, the page would show the rows as they were before the commit.
        assert cached("/") and cached(story.get_absolute_url())

    assert b"Ferry timetable triples" in visitor().get(story.get_absolute_url()).content
    assert not cached("/")


def test_the_scopes_a_transaction_changes_are_bumped_once_each(django_capture_on_commit_callbacks, redis_client):
    from django.db import transaction

    story = StoryFactory()
    lists_before = pagecache.current_generations((pagecache.LISTS,))[pagecache.LISTS]

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        story.tags.add(TagFactory())
        story.save()
        StoryFactory()

    assert pagecache.current_generations((pagecache.LISTS,))[pagecache.LISTS] == lists_before + 1


def test_a_change_rolled_back_invalidates_nothing(django_capture_on_commit_callbacks):
    from django.db import transaction

    story = StoryFactory()
    keep("/", story.get_absolute_url())

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic(), transaction.atomic():
        story.title = "A headline never published"
        story.save()
        transaction.set_rollback(True)

    assert cached("/") and cached(story.get_absolute_url())


def renewing(redis_client) -> str:
    """The mark a request leaves while it renders the one page kept anew."""
    (page_key,) = (key.decode() for key in redis_client.scan_iter("*newsreader:pages:v2:*"))
    return page_key + pagecache.RENEWING_SUFFIX


def test_while_a_changed_list_is_rendered_anew_others_get_its_previous_copy(redis_client):
    shown = StoryFactory()
    keep("/")
    rendering_elsewhere = renewing(redis_client)
    StoryFactory(title="Night trams return", source=shown.source, section=shown.section)
    redis_client.set(rendering_elsewhere, 1, px=2_000)

    meanwhile = visitor().get("/")
    assert meanwhile["X-Page-Cache"] == "stale" and b"Night trams return" not in meanwhile.content

    redis_client.delete(rendering_elsewhere)
    fresh = visitor().get("/")
    assert "X-Page-Cache" not in fresh and b"Night trams return" in fresh.content
    assert not redis_client.exists(rendering_elsewhere)  # the request that rendered it let go
    assert cached("/")


def test_a_changed_list_is_rendered_anew_when_redis_fails_to_mark_who_renders_it(redis_client, monkeypatch):
    shown = StoryFactory()
    keep("/")
    StoryFactory(title="Night trams return", source=shown.source, section=shown.section)

    def refused(*args, **kwargs):
        raise redis.ConnectionError("Redis went away mid-request")

    monkeypatch.setattr(redis_client, "set", refused)
    page = visitor().get("/")

    assert page.status_code == 200 and "X-Page-Cache" not in page and b"Night trams return" in page.content


def test_a_list_behind_a_change_to_the_site_is_never_answered_from_its_previous_copy(redis_client):
    story = StoryFactory()
    keep("/")
    redis_client.set(renewing(redis_client), 1, px=2_000)

    story.section.name = "Getting around"
    story.section.save()

    page = visitor().get("/")
    assert "X-Page-Cache" not in page and b"Getting around" in page.content


def test_a_story_page_is_never_answered_from_its_previous_copy(redis_client):
    story = StoryFactory()
    keep(story.get_absolute_url())
    redis_client.set(renewing(redis_client), 1, px=2_000)

    story.title = "Ferry timetable triples"
    story.save()

    page = visitor().get(story.get_absolute_url())
    assert "X-Page-Cache" not in page and b"Ferry timetable triples" in page.content


def test_list_pages_are_kept_at_most_list_page_cache_seconds(settings, redis_client):
    settings.VISITOR_PAGE_CACHE_SECONDS = 600
    settings.LIST_PAGE_CACHE_SECONDS = 45
    story = StoryFactory()
    visitor().get("/")
    visitor().get(story.get_absolute_url())

    ttls = {redis_client.ttl(key) for key in redis_client.scan_iter("*newsreader:pages:v2:*")}

    assert len(ttls) == 2 and min(ttls) <= 45 < max(ttls) <= 600


def test_an_import_invalidates_the_lists_once_its_stories_are_stored(django_capture_on_commit_callbacks):
    from stories.importing import service
    from stories.importing.parse import ParsedEntry

    shown = StoryFactory()
    keep("/", shown.get_absolute_url())
    entry = ParsedEntry(
        title="Ferry timetable doubles in summer",
        link="https://source.example.org/ferries",
        guid="ferries-1",
        author="",
        published=None,
        published_was_in_future=False,
        summary_html="<p>Two more crossings a day from June.</p>",
        content_html="",
    )

    with django_capture_on_commit_callbacks(execute=True):
        service.store_entries(source=shown.source, entries=[entry])

    assert b"Ferry timetable doubles in summer" in visitor().get("/").content
    assert cached(shown.get_absolute_url())
