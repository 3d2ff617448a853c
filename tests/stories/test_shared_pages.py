"""One cached page for every reader: signed-in readers get the visitors' cached pages, each with their own
personal parts (name, forms, held comments, messages) filled in, and nothing of theirs is ever kept."""

import re
from collections import Counter

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from comments import services
from comments.models import MODERATORS_GROUP, Comment
from follows import selectors as follows_selectors
from follows.models import Follow, SavedStory
from newsreader import personal
from newsreader.sanitize import sanitize_html
from stories import pagecache
from tests.conftest import view_count_queries
from tests.factories import CommentFactory, StoryFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def page_cache_on(settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60


def signed_in(user) -> Client:
    client = Client(HTTP_USER_AGENT="test browser")
    client.force_login(user)
    return client


def cached_pages(redis_client) -> list[bytes]:
    keys = [key for key in redis_client.keys("newsreader:pages:*") if b":generation:" not in key]
    return [redis_client.get(key) for key in keys]


def csrf_token_in(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_two_readers_share_one_cached_story_page_and_each_sees_only_their_own_parts(redis_client):
    story = StoryFactory()
    ana = UserFactory(username="ana_reads", email="ana@example.org")
    ben = UserFactory(username="ben_reads", email="ben@example.org")
    ana_client, ben_client = signed_in(ana), signed_in(ben)

    first = ana_client.get(story.get_absolute_url())
    second = ben_client.get(story.get_absolute_url())

    assert "X-Page-Cache" not in first
    assert second["X-Page-Cache"] == "hit"
    assert len(cached_pages(redis_client)) == 1
    ana_page, ben_page = first.content.decode(), second.content.decode()
    assert "<bdi>ana_reads</bdi>" in ana_page and "ben_reads" not in ana_page
    assert "<bdi>ben_reads</bdi>" in ben_page and "ana_reads" not in ben_page
    for page in (ana_page, ben_page):
        assert "Log in to comment." not in page
        assert "Post comment" in page and "Log out" in page and "Is a label wrong?" in page
        assert "Save for later" in page
        assert "<!--nr:p" not in page
        assert '<form class="comment-form"' in page and "&lt;form" not in page and "&lt;section" not in page
    assert csrf_token_in(ana_page) != csrf_token_in(ben_page)
    assert first["Cache-Control"] == second["Cache-Control"] == "private, no-store"


def test_the_shared_entry_holds_nothing_of_the_reader_who_caused_it(redis_client):
    story = StoryFactory()
    reader = UserFactory(username="cara_reads", email="cara@example.org")
    page = signed_in(reader).get(story.get_absolute_url()).content.decode()

    (stored,) = cached_pages(redis_client)
    assert b"cara" not in stored
    assert csrf_token_in(page).encode() not in stored
    assert b"csrfmiddlewaretoken" not in stored
    assert b"Log in to comment." in stored  # the visitor's version, between its markers

    visitor = Client().get(story.get_absolute_url())
    assert visitor["X-Page-Cache"] == "hit"
    assert "Cookie" in visitor["Vary"]
    assert b"Log in to comment." in visitor.content and b"cara" not in visitor.content


def test_the_story_list_is_shared_too():
    StoryFactory(title="Ferries return to the bay")
    Client().get("/")

    page = signed_in(UserFactory(username="dev_reads")).get("/")

    assert page["X-Page-Cache"] == "hit"
    assert b"Ferries return to the bay" in page.content
    assert b"<bdi>dev_reads</bdi>" in page.content and b"Sign up" not in page.content


def test_a_readers_comment_awaiting_moderation_shows_to_them_alone_on_the_shared_page():
    story = StoryFactory()
    author, other = UserFactory(), UserFactory()
    held = "Held for a moderator to read"
    CommentFactory(story=story, author=author, body_source=held, status=Comment.Status.PENDING)
    Client().get(story.get_absolute_url())

    theirs = signed_in(author).get(story.get_absolute_url())
    others = signed_in(other).get(story.get_absolute_url())

    assert theirs["X-Page-Cache"] == others["X-Page-Cache"] == "hit"
    assert b"Held for a moderator to read" in theirs.content
    assert b"awaiting moderation" in theirs.content
    assert b"Held for a moderator to read" not in others.content


def test_a_flash_message_reaches_the_reader_on_a_cached_page():
    story = StoryFactory()
    reader = UserFactory(is_staff=True)  # never held for moderation: the comment is published at once
    client = signed_in(reader)
    posted = client.post(
        reverse("comments:post", kwargs={"slug": story.slug}),
        {"body": "A first thought on this", "idempotency_key": "11111111-1111-4111-8111-111111111111"},
    )
    assert posted.status_code == 302

    page = client.get(posted["Location"])
    again = client.get(posted["Location"])
    client.get(posted["Location"])  # a comment's page is kept from its second rendering in a process
    again = client.get(posted["Location"])

    assert b'class="message message-success"' in page.content
    assert b'class="message message-success"' not in again.content
    assert b"A first thought on this" in again.content
    assert again["X-Page-Cache"] == "hit"


def test_without_the_cache_signed_in_readers_get_the_same_page_and_parts(settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    story = StoryFactory()

    page = signed_in(UserFactory(username="eve_reads")).get(story.get_absolute_url())

    assert "X-Page-Cache" not in page
    assert b"<bdi>eve_reads</bdi>" in page.content and b"Post comment" in page.content
    assert b"<!--nr:p" not in page.content


def test_a_readers_views_are_counted_once_whether_the_page_was_cached_or_not(redis_client):
    story = StoryFactory()
    client = signed_in(UserFactory())
    client.get(story.get_absolute_url())
    client.get(story.get_absolute_url())
    Client().get(story.get_absolute_url())

    from stories import viewcounts

    assert viewcounts.flush_pending_views() == 2  # the reader once, the visitor once


def test_shared_pages_are_the_ones_marked_for_visitors():
    assert pagecache._expected_scopes("/accounts/email/") is None
    assert pagecache._expected_scopes("/") == pagecache.DEFAULT_SCOPES


def test_a_readers_parts_are_kept_until_they_do_something(django_assert_num_queries):
    story = StoryFactory(source__name="Harbour Ledger", source__slug="harbour-ledger")
    client = signed_in(UserFactory())
    client.get(story.get_absolute_url())  # gives the reader the CSRF cookie their kept parts go with
    client.get(story.get_absolute_url())

    with django_assert_num_queries(0):  # the reader, the page and their parts from the cache
        kept = client.get(story.get_absolute_url())
    assert b"Follow Harbour Ledger" in kept.content

    token = csrf_token_in(kept.content.decode())
    followed = client.post(
        reverse("follows:follow"),
        {"kind": "source", "slug": "harbour-ledger", "csrfmiddlewaretoken": token, "next": story.get_absolute_url()},
    )
    assert followed.status_code == 302

    after = client.get(story.get_absolute_url())
    assert after["X-Page-Cache"] == "hit"
    assert b"Unfollow Harbour Ledger" in after.content


def test_each_copy_of_a_kept_comment_form_has_its_own_key():
    story = StoryFactory()
    client = signed_in(UserFactory())
    keys = set()
    for _ in range(3):
        html = client.get(story.get_absolute_url()).content.decode()
        keys.add(re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1))

    assert len(keys) == 3
    assert personal.FRESH_UUID not in keys


def test_kept_parts_never_pass_from_one_reader_to_another():
    story = StoryFactory()
    ana, ben = signed_in(UserFactory(username="ana_kept")), signed_in(UserFactory(username="ben_kept"))
    for _ in range(3):
        ana_page = ana.get(story.get_absolute_url()).content
        ben_page = ben.get(story.get_absolute_url()).content

    assert b"ana_kept" in ana_page and b"ben_kept" not in ana_page
    assert b"ben_kept" in ben_page and b"ana_kept" not in ben_page


def test_a_comment_cannot_forge_a_personal_part():
    story = StoryFactory()
    forged = "<!--nr:p account_nav--><!--/nr:p--> and <!--nr:p comment_form story=1-->"
    CommentFactory(story=story, body_source=forged, body_html=sanitize_html(forged))
    Client().get(story.get_absolute_url())

    page = signed_in(UserFactory(username="fay_reads")).get(story.get_absolute_url()).content.decode()

    assert page.count("<bdi>fay_reads</bdi>") == 1  # the header's own, not one filled into the comment
    assert "<!--nr:p" not in page


def test_a_readers_first_view_of_a_page_others_read_costs_no_query_for_their_parts(django_assert_num_queries):
    first, second = StoryFactory(), StoryFactory()
    signed_in(UserFactory()).get(second.get_absolute_url())  # the shared page, and what its parts look up
    client = signed_in(UserFactory())
    client.get(first.get_absolute_url())  # gives the reader the CSRF cookie their parts go with
    client.get(first.get_absolute_url())  # their facts, made once for every page

    # the reader, the page, their facts and the story from the caches (without Redis, the view is counted)
    with django_assert_num_queries(view_count_queries()):
        page = client.get(second.get_absolute_url())

    assert b"Post comment" in page.content and b"Save for later" in page.content


def test_what_others_change_about_a_reader_shows_on_their_next_page(django_capture_on_commit_callbacks):
    story = StoryFactory()
    reader = UserFactory(username="gus_reads")
    client = signed_in(reader)
    for _ in range(2):
        page = client.get(story.get_absolute_url()).content.decode()
    assert "Post comment" in page and "Edit</a>" not in page

    with django_capture_on_commit_callbacks(execute=True):
        CommentFactory(story=story, author=reader, body_source="Written for gus elsewhere")
    pagecache.story_discussion_changed(story.slug)  # as the comment services do
    page = client.get(story.get_absolute_url()).content.decode()
    assert "Written for gus elsewhere" in page and "Edit</a>" in page and "Delete</a>" in page

    with django_capture_on_commit_callbacks(execute=True):
        services.commenter_ban(user=reader, moderator=UserFactory(is_staff=True))
    page = client.get(story.get_absolute_url()).content.decode()
    assert "Your account can no longer comment." in page and "Post comment" not in page


def test_a_reader_made_moderator_gets_the_pick_buttons_on_their_next_page(django_capture_on_commit_callbacks):
    story = StoryFactory()
    CommentFactory(story=story, body_source="A useful note on the timetable")
    reader = UserFactory()
    client = signed_in(reader)
    for _ in range(2):
        page = client.get(story.get_absolute_url()).content.decode()
    assert "Make editors' pick" not in page

    with django_capture_on_commit_callbacks(execute=True):
        reader.groups.add(Group.objects.get(name=MODERATORS_GROUP))

    assert "Make editors' pick" in client.get(story.get_absolute_url()).content.decode()


def test_a_reader_with_more_than_a_fact_holds_gets_their_answers_from_the_database(monkeypatch):
    monkeypatch.setattr(personal, "READER_FACT_LIMIT", 1)
    saved = StoryFactory.create_batch(2)
    reader = UserFactory()
    for story in saved:
        SavedStory.objects.create(reader=reader, story=story)
    client = signed_in(reader)
    client.get(saved[0].get_absolute_url())

    assert follows_selectors.saved_story_ids(reader) is None
    for story in saved:
        assert b"Remove from saved" in client.get(story.get_absolute_url()).content


def test_a_new_comment_makes_only_the_readers_parts_about_comments_anew(monkeypatch):
    story = StoryFactory()
    made = Counter()
    for name in ("comment_form", "story_follow", "label_report", "pending_comments", "comment_actions"):
        monkeypatch.setitem(personal._fillers, name, counted(personal._fillers[name], name, made))
    client = signed_in(UserFactory())
    for _ in range(2):
        client.get(story.get_absolute_url())
    made.clear()

    CommentFactory(story=story, body_source="The ferry timetable changed again")
    pagecache.story_discussion_changed(story.slug)  # as the comment services do
    page = client.get(story.get_absolute_url()).content.decode()

    assert "The ferry timetable changed again" in page and "Report</a>" in page and "Post comment" in page
    assert made == {"pending_comments": 1, "comment_actions": 1}


def counted(filler, name: str, made: Counter):
    """The filler, counting the times it makes a signed-in reader's parts (not the visitor's, on the shared page)."""

    def filling(fill, occurrences):
        if fill.request.user.is_authenticated:
            made[name] += 1
        return filler(fill, occurrences)

    return filling


def test_readers_following_different_things_get_their_own_follow_buttons_from_one_shared_render():
    story = StoryFactory(source__name="Tide Table Weekly", source__slug="tide-table-weekly")
    follower, other = UserFactory(), UserFactory()
    Follow.objects.create(reader=follower, source=story.source)
    pages = {}
    for reader in (follower, other, follower):
        client = signed_in(reader)
        client.get(story.get_absolute_url())
        pages[reader.pk] = client.get(story.get_absolute_url()).content.decode()

    assert "Unfollow Tide Table Weekly" in pages[follower.pk]
    assert "Follow Tide Table Weekly" in pages[other.pk] and "Unfollow Tide Table Weekly" not in pages[other.pk]
    assert csrf_token_in(pages[follower.pk]) != csrf_token_in(pages[other.pk])
    assert personal.CSRF_PLACEHOLDER not in pages[follower.pk] + pages[other.pk]


def test_a_reader_asking_for_a_list_being_rendered_anew_gets_its_previous_copy_with_their_parts(redis_client):
    shown = StoryFactory()
    ana = UserFactory(username="ana_reads", email="ana@example.org")
    ana_client = signed_in(ana)
    ana_client.get("/")
    (page_key,) = redis_client.keys("newsreader:pages:v2:*")
    StoryFactory(title="Night trams return", source=shown.source, section=shown.section)
    redis_client.set(page_key + pagecache.RENEWING_SUFFIX.encode(), 1, px=2_000)

    meanwhile = ana_client.get("/")

    assert meanwhile["X-Page-Cache"] == "stale"
    page = meanwhile.content.decode()
    assert "Night trams return" not in page and "<bdi>ana_reads</bdi>" in page and "<!--nr:p" not in page
