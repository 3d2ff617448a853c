"""The story page carries its comments: the first page of the thread and the form are in the page itself,
so they read without JavaScript, and a visitor's cached copy never holds anything personal."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from comments import services
from comments.models import Comment
from tests.conftest import view_count_queries
from tests.factories import CommentFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules")]


def story_page(client, story) -> str:
    response = client.get(story.get_absolute_url())
    assert response.status_code == 200
    return response.content.decode()


def comments_section(html: str) -> str:
    return html[html.index('<section id="comments"') : html.index("</section>", html.index('<section id="comments"'))]


def test_visitor_reads_the_comments_and_is_asked_to_log_in(client, story):
    first = CommentFactory(
        story=story, body_source="Shore power is overdue.", body_html="<p>Shore power is overdue.</p>"
    )
    CommentFactory(parent=first, body_source="The port says so too.", body_html="<p>The port says so too.</p>")

    section = comments_section(story_page(client, story))

    assert "Comments (2)" in section
    assert "Log in to comment." in section
    assert "<p>Shore power is overdue.</p>" in section
    assert "<p>The port says so too.</p>" in section
    assert "<form" not in section
    assert "hx-trigger" not in section, "nothing waits for a script to fetch the thread"


def test_loading_notice_is_hidden_until_a_script_loads_part_of_the_thread(client, story):
    section = comments_section(story_page(client, story))

    assert re.findall(r"<p[^>]*>Loading\.\.\.</p>", section) == ['<p class="loading" hidden>Loading...</p>']
    assert 'hx-indicator="#comments"' in section


def test_empty_thread_invites_the_first_comment(client, story):
    assert "No comments yet. Start the conversation." in story_page(client, story)


def test_reader_gets_the_comment_form_on_the_story_page(client, story, author):
    client.force_login(author)

    section = comments_section(story_page(client, story))

    assert f'action="/comments/{story.slug}/post/"' in section
    assert 'name="csrfmiddlewaretoken"' in section
    assert "Post comment" in section
    assert "Log in to comment." not in section


def test_reader_without_a_verified_email_is_told_why_there_is_no_form(client, story):
    unverified = UserFactory(verified=False)
    client.force_login(unverified)

    section = comments_section(story_page(client, story))

    assert "Please verify your email address before commenting." in section
    assert "<textarea" not in section


def test_reader_sees_their_own_comment_awaiting_moderation_and_visitors_do_not(client, story, author, rules):
    rules("hold_all")
    comment = services.comment_create(story=story, author=author, body="Held until a moderator reads it.")
    assert comment.status == Comment.Status.PENDING

    assert "Held until a moderator reads it." not in story_page(client, story)
    client.force_login(author)
    section = comments_section(story_page(client, story))
    assert "Held until a moderator reads it." in section
    assert "awaiting moderation" in section


def test_more_comments_than_a_page_link_to_the_next_page(client, story, settings):
    settings.COMMENTS_PER_PAGE = 2
    CommentFactory.create_batch(3, story=story)

    section = comments_section(story_page(client, story))

    assert f'href="/comments/{story.slug}/?sort=oldest&amp;start=2"' in section
    assert "Load more comments" in section


@pytest.mark.parametrize("comment_count", [1, 30])
def test_visitor_page_queries_do_not_grow_with_comments(client, settings, django_assert_num_queries, comment_count):
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    story = StoryFactory()
    for top in CommentFactory.create_batch(comment_count, story=story):
        CommentFactory(parent=top)
    client.get(StoryFactory().get_absolute_url())  # caches the moderation rules

    # the story (with whether others cover it), its tags; the page of comments; without Redis, the view counted
    with django_assert_num_queries(3 + view_count_queries()):
        client.get(story.get_absolute_url())
    # then both are kept until the story or its comments change
    with django_assert_num_queries(0):
        client.get(story.get_absolute_url())


def test_reader_page_queries_do_not_grow_with_comments(client, settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    client.force_login(UserFactory())
    queries = {}
    for comment_count in (1, 30):
        story = StoryFactory()
        for top in CommentFactory.create_batch(comment_count, story=story):
            CommentFactory(parent=top)
        client.get(story.get_absolute_url())
        with CaptureQueriesContext(connection) as captured:
            client.get(story.get_absolute_url())
        queries[comment_count] = [query["sql"] for query in captured.captured_queries]

    # Other parts of a reader's page may add queries of their own; the comments' share stays fixed: the
    # thread, the reader's own comments awaiting moderation, and what they may do with those shown.
    assert len(queries[1]) == len(queries[30])
    assert sum('FROM "comments_comment"' in sql for sql in queries[30]) <= 3


class TestVisitorPageCache:
    @pytest.fixture(autouse=True)
    def page_cache_on(self, settings, redis_client):
        settings.VISITOR_PAGE_CACHE_SECONDS = 60

    def test_cached_page_shows_a_new_comment_at_once(self, client, story, author, django_capture_on_commit_callbacks):
        CommentFactory(story=story, body_source="First!", body_html="<p>First!</p>")
        story_page(client, story)
        assert client.get(story.get_absolute_url())["X-Page-Cache"] == "hit"

        with django_capture_on_commit_callbacks(execute=True):
            services.comment_create(story=story, author=author, body="A second opinion on the ferries.")

        response = client.get(story.get_absolute_url())
        assert "X-Page-Cache" not in response
        assert "A second opinion on the ferries." in response.content.decode()
        assert "Comments (2)" in response.content.decode()

    def test_readers_form_and_name_never_reach_the_visitors_copy(self, client, story):
        reader = UserFactory(username="quillon", email="quillon@example.org")
        CommentFactory(story=story)
        client.force_login(reader)
        assert "Post comment" in story_page(client, story)
        client.logout()
        client.cookies.clear()

        first_visit = client.get(story.get_absolute_url())
        second_visit = client.get(story.get_absolute_url())

        # The reader's visit kept the page every reader shares, without anything of theirs in it.
        assert first_visit["X-Page-Cache"] == second_visit["X-Page-Cache"] == "hit"
        for response in (first_visit, second_visit):
            html = response.content.decode()
            assert "Log in to comment." in html
            assert "<textarea" not in html
            assert "csrfmiddlewaretoken" not in html
            assert "quillon" not in html
