"""Live threads: the poll an open thread makes for "N new comments — show", answered from the page cache
before sessions and views, and the header's count of new replies to a reader's comments."""

import json
import re

import pytest
from django.test import Client

from comments import selectors, services
from comments.models import Comment, Commenter
from comments.views import forget_kept_threads
from stories import pagecache
from tests.factories import CommentFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules")]


@pytest.fixture(autouse=True)
def page_cache_on(settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    settings.COMMENTS_LIVE_POLL_SECONDS = 20


def poll(story, client: Client | None = None):
    """The script's request: no cookies, so a visitor's."""
    return (client or Client()).get(f"/comments/{story.slug}/live/", HTTP_ACCEPT="application/json")


def answer(response) -> dict:
    assert response.status_code == 200
    return json.loads(response.content)


# --- The poll --------------------------------------------------------------------------------


def test_the_poll_answers_the_published_count_and_the_newest_published_comment(story):
    first = CommentFactory(story=story)
    newest = CommentFactory(story=story)
    CommentFactory(story=story, status=Comment.Status.PENDING)
    CommentFactory(story=story, status=Comment.Status.REMOVED)

    assert answer(poll(story)) == {"count": 2, "newest": newest.pk}
    assert first.pk < newest.pk


def test_an_empty_thread_has_no_newest_comment(story):
    assert answer(poll(story)) == {"count": 0, "newest": None}


def test_a_repeated_poll_is_a_page_cache_hit_without_a_query(story, django_assert_num_queries):
    CommentFactory(story=story)
    first = poll(story)

    with django_assert_num_queries(0):
        again = poll(story)

    assert again["X-Page-Cache"] == "hit"
    assert again.content == first.content
    assert again["Cache-Control"] == "public, max-age=10"
    assert again["Content-Type"] == "application/json"


def test_the_poll_costs_one_query_when_the_page_cache_misses(story, settings, django_assert_num_queries):
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    CommentFactory(story=story)

    with django_assert_num_queries(1):
        assert answer(poll(story))["count"] == 1


def test_a_new_comment_changes_the_answer_at_once(story, author, django_capture_on_commit_callbacks):
    CommentFactory(story=story)
    assert answer(poll(story))["count"] == 1

    with django_capture_on_commit_callbacks(execute=True):
        posted = services.comment_create(story=story, author=author, body="Just arrived on the night boat.")

    assert answer(poll(story)) == {"count": 2, "newest": posted.pk}


def test_a_story_nobody_may_read_has_no_poll(story):
    hidden = StoryFactory(status="hidden")

    assert poll(hidden).status_code == 404
    assert Client().get("/comments/no-such-story/live/").status_code == 404


def test_a_signed_in_readers_poll_is_never_kept_by_shared_caches(story, author):
    reader = Client()
    reader.force_login(author)

    response = poll(story, reader)

    assert answer(response) == {"count": 0, "newest": None}
    assert response["Cache-Control"] == "private, no-store"


def test_the_thread_tells_the_script_where_and_how_often_to_ask(client, story, settings):
    html = client.get(story.get_absolute_url()).content.decode()

    slot = re.search(r'<p id="comment-live"[^>]*>', html).group(0)
    assert f'data-live-url="/comments/{story.slug}/live/"' in slot
    assert f'data-show-url="/comments/{story.slug}/thread/?sort=newest"' in slot
    assert 'data-poll-seconds="20"' in slot
    assert " hidden>" in slot, "without JavaScript the slot stays out of sight"

    settings.COMMENTS_LIVE_POLL_SECONDS = 0
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    forget_kept_threads()  # what a process kept goes with it when a changed setting restarts it
    assert 'id="comment-live"' not in client.get(story.get_absolute_url()).content.decode()


# --- New replies in the header ---------------------------------------------------------------


def header(client) -> str:
    html = client.get("/").content.decode()
    return html[html.index('<nav class="account-nav"') : html.index("</nav>", html.index('<nav class="account-nav"'))]


def reply_badge(client) -> str | None:
    found = re.search(r'<span class="badge reply-count"[^>]*>([^<]*)<span class="visually-hidden">', header(client))
    return found.group(1) if found else None


def test_the_header_counts_other_readers_published_replies_to_my_comments(client, story, author, other_reader):
    mine = CommentFactory(story=story, author=author)
    CommentFactory(parent=mine, author=other_reader)
    CommentFactory(parent=mine, author=UserFactory())
    CommentFactory(parent=mine, author=author)  # my own follow-up
    CommentFactory(parent=mine, author=other_reader, status=Comment.Status.PENDING)
    CommentFactory(story=story, author=other_reader)  # not a reply to me
    client.force_login(author)

    assert reply_badge(client) == "2"
    assert '<span class="visually-hidden"> new replies</span>' in header(client)


def test_opening_your_comments_clears_the_count_and_later_replies_count_again(client, story, author, other_reader):
    mine = CommentFactory(story=story, author=author)
    CommentFactory(parent=mine, author=other_reader)
    client.force_login(author)
    assert reply_badge(client) == "1"

    activity = client.get("/comments/my/comments/").content.decode()
    assert 'class="badge reply-count"' not in activity
    assert reply_badge(client) is None

    CommentFactory(parent=mine, author=other_reader)
    # The minute the count is kept, and the reader's parts with it, has passed.
    selectors.cache.delete(selectors.unseen_replies_cache_key(author.pk))
    pagecache.reader_did_something(author.pk)
    assert reply_badge(client) == "1"


def test_many_new_replies_show_as_99_plus(client, story, author, other_reader):
    mine = CommentFactory(story=story, author=author)
    Comment.objects.bulk_create(
        Comment(story=story, parent=mine, root=mine, depth=1, author=other_reader, body_html=f"<p>{n}</p>")
        for n in range(101)
    )
    client.force_login(author)

    assert reply_badge(client) == "99+"


def test_the_count_is_one_query_then_kept(story, author, other_reader, django_assert_num_queries):
    CommentFactory(parent=CommentFactory(story=story, author=author), author=other_reader)

    with django_assert_num_queries(1):
        assert selectors.unseen_reply_count(author.pk) == 1
    with django_assert_num_queries(0):
        assert selectors.unseen_reply_count(author.pk) == 1


def test_visitors_have_no_reply_count(client, story):
    assert 'class="badge reply-count"' not in header(client)


def test_replies_seen_is_when_the_reader_last_looked(story, author):
    services.commenter_mark_replies_seen(user=author)
    before = Commenter.objects.get(user=author).replies_seen_at
    services.commenter_mark_replies_seen(user=author)

    assert Commenter.objects.get(user=author).replies_seen_at > before
