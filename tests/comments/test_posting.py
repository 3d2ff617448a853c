"""Posting, replying, editing, deleting and reporting through the pages: with htmx and without
JavaScript, CSRF on every form, and every refusal a clear message with the right status, never a 500."""

import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from comments import moderation, services
from comments.models import Comment, ModerationLog, Report
from stories.models import Story
from tests.comments.utils import htmx
from tests.factories import CommentFactory, StoryFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules")]

Status = Comment.Status


@pytest.fixture
def signed_in(client, author):
    client.force_login(author)
    return client


def post_comment(client, story, body="Hello harbour", key=None, **headers):
    data = {"body": body, "idempotency_key": str(key or uuid.uuid4())}
    return client.post(f"/comments/{story.slug}/post/", data, **headers)


# --- Posting ---------------------------------------------------------------------------------


def test_posting_without_javascript_redirects_to_the_new_comment(signed_in, story, author):
    response = post_comment(signed_in, story, "Plain *form*")

    comment = Comment.objects.get(author=author)
    assert response.status_code == 302
    assert response["Location"] == f"/comments/c/{comment.pk}/#comment-{comment.pk}"
    page = signed_in.get(response["Location"]).content.decode()
    assert "Your comment is published." in page
    assert "<em>form</em>" in page


def test_posting_with_htmx_returns_the_comment_a_fresh_form_and_the_new_count(signed_in, story):
    key = uuid.uuid4()
    response = post_comment(signed_in, story, "Via htmx", key=key, **htmx())

    html = response.content.decode()
    assert response.status_code == 200
    assert re.match(r'\s*<li class="comment" id="comment-\d+">', html)
    assert "Via htmx" in html
    assert '<span id="comments-heading" hx-swap-oob="innerHTML">Comments (1)</span>' in html
    assert '<div id="comment-form-top" hx-swap-oob="innerHTML">' in html
    fresh_key = re.search(r'name="idempotency_key" value="([0-9a-f-]+)"', html).group(1)
    assert fresh_key != str(key)
    assert "Your comment is published." in html


def test_held_comment_says_it_awaits_moderation(signed_in, story, rules):
    rules("suspect_words", words="casino")

    html = post_comment(signed_in, story, "casino night", **htmx()).content.decode()

    assert "awaiting moderation" in html
    assert "will appear once a moderator has approved it" in html
    assert "Comments (0)" in html


def test_double_submit_of_one_form_posts_once(signed_in, story):
    key = uuid.uuid4()

    first = post_comment(signed_in, story, "Only once", key=key)
    second = post_comment(signed_in, story, "Only once", key=key)

    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Comment.objects.count() == 1


def test_rate_limited_htmx_post_gets_429_with_the_message_in_the_form(signed_in, story, rules):
    rules("rate_limit", limit=1, window_seconds=15)
    post_comment(signed_in, story, "first", **htmx())

    response = post_comment(signed_in, story, "second", **htmx())

    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 15
    assert response["HX-Retarget"] == "#comment-form-top"
    assert response["HX-Reswap"] == "innerHTML"
    html = response.content.decode()
    assert "You are commenting too quickly" in html
    assert ">second</textarea>" in html  # the reader's text is kept


def test_rate_limited_post_without_javascript_gets_a_page_with_the_message(signed_in, story, rules):
    rules("rate_limit", limit=1, window_seconds=15)
    post_comment(signed_in, story, "first")

    response = post_comment(signed_in, story, "second")

    assert response.status_code == 429
    assert "You are commenting too quickly" in response.content.decode()


NOTICE_LINE = re.compile(r'<p id="comment-status" hx-swap-oob="innerHTML">(.*?)</p>', re.DOTALL)


def notice_line(response) -> str | None:
    """What an htmx answer puts on the thread's notice line; None when it leaves the line alone."""
    found = NOTICE_LINE.findall(response.content.decode())
    assert len(found) <= 1
    return found[0].strip() if found else None


def test_a_refusal_after_a_post_replaces_the_published_notice(signed_in, story, rules):
    rules("rate_limit", limit=1, window_seconds=15)
    rules("rate_limit", limit=1, window_seconds=60)

    published = post_comment(signed_in, story, "first", **htmx())
    refused = post_comment(signed_in, story, "second", **htmx())

    assert notice_line(published) == "Your comment is published."
    assert refused.status_code == 429
    assert notice_line(refused) == ""
    html = refused.content.decode()
    assert html.count('class="comment-error"') == 1
    assert html.count("You are commenting too quickly") == 1
    assert "at most 1 comment every 1 minute" in html
    assert "15 seconds" not in html
    wait = int(refused["Retry-After"])
    assert 59 <= wait <= 60
    assert f"Please try again in {wait} seconds." in html


def test_a_refused_reply_clears_the_notice_line_too(signed_in, story, rules):
    rules("rate_limit", limit=1, window_seconds=15)
    parent = CommentFactory(story=story)
    post_comment(signed_in, story, "first", **htmx())

    refused = signed_in.post(
        f"/comments/c/{parent.pk}/reply/", {"body": "a reply", "idempotency_key": str(uuid.uuid4())}, **htmx()
    )

    assert refused.status_code == 429
    assert refused["HX-Retarget"] == f"#comment-{parent.pk}-slot"
    assert notice_line(refused) == ""


def test_without_javascript_a_refusal_stands_alone(signed_in, story, rules):
    rules("rate_limit", limit=1, window_seconds=15)
    published = signed_in.get(post_comment(signed_in, story, "first")["Location"]).content.decode()

    refused = post_comment(signed_in, story, "second")

    assert "Your comment is published." in published
    html = refused.content.decode()
    assert refused.status_code == 429
    assert "Your comment is published." not in html
    assert html.count("You are commenting too quickly") == 1


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"body": ""}, 422, "Write something before posting."),
        ({"body": "   "}, 422, "Write something before posting."),
        ({"body": "x", "idempotency_key": "not-a-uuid"}, 422, "Enter a valid UUID."),
        ({"body": "x" * 5001}, 422, "at most 5,000 characters long; this one has 5,001"),
    ],
)
def test_bad_submissions_are_refused_with_a_message(signed_in, story, data, status, message):
    response = signed_in.post(f"/comments/{story.slug}/post/", data, **htmx())

    assert response.status_code == status
    assert message in response.content.decode()
    assert Comment.objects.count() == 0


def test_banned_words_are_refused_with_a_message_and_a_new_form_key(signed_in, story, rules):
    rules("banned_words", words="darn")
    key = uuid.uuid4()

    response = post_comment(signed_in, story, "darn it", key=key, **htmx())

    assert response.status_code == 422
    html = response.content.decode()
    assert "not allowed here" in html
    assert str(key) not in html


def test_closed_story_refuses_with_403_and_says_so(signed_in):
    story = Story.objects.create(
        source=CommentFactory().story.source,
        title="Closed",
        original_url="https://example.org/closed",
        status=Story.Status.PUBLISHED,
        comments_mode=Story.CommentsMode.CLOSED,
    )

    response = post_comment(signed_in, story, **htmx())

    assert response.status_code == 403
    assert "Comments are closed on this story." in response.content.decode()


def test_visitors_are_sent_to_log_in(client, story):
    response = post_comment(client, story)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_posting_needs_a_csrf_token(story, author):
    client = Client(enforce_csrf_checks=True)
    client.force_login(author)

    response = post_comment(client, story)

    assert response.status_code == 403
    assert Comment.objects.count() == 0


def test_comment_forms_carry_a_csrf_token(signed_in, story, author):
    comment = CommentFactory(story=story, author=author)
    other = CommentFactory(story=story)
    pages = [
        f"/comments/{story.slug}/thread/",
        f"/comments/c/{other.pk}/reply/",
        f"/comments/c/{comment.pk}/edit/",
        f"/comments/c/{comment.pk}/delete/",
        f"/comments/c/{other.pk}/report/",
        "/comments/my/comments/",
        "/comments/my/delete-account/",
    ]
    for page in pages:
        html = signed_in.get(page).content.decode()
        assert html.count("<form") - html.count('role="search"') == html.count("csrfmiddlewaretoken"), page


# --- Replying --------------------------------------------------------------------------------


def test_reply_form_loads_under_the_comment_and_posts_into_its_replies(signed_in, story):
    parent = CommentFactory(story=story)

    form = signed_in.get(f"/comments/c/{parent.pk}/reply/", **htmx()).content.decode()
    assert f'hx-target="#comment-{parent.pk}-replies" hx-swap="beforeend"' in form
    assert "<html" not in form

    response = signed_in.post(
        f"/comments/c/{parent.pk}/reply/", {"body": "I agree", "idempotency_key": str(uuid.uuid4())}, **htmx()
    )
    assert response.status_code == 200
    assert f'<div id="comment-{parent.pk}-slot" hx-swap-oob="innerHTML"></div>' in response.content.decode()
    assert Comment.objects.get(body_source="I agree").parent == parent


def test_a_reply_to_a_reply_joins_the_thread_one_level_deeper_and_counts_in_it(signed_in, story):
    top = CommentFactory(story=story)
    middle = CommentFactory(parent=top)

    response = signed_in.post(
        f"/comments/c/{middle.pk}/reply/", {"body": "Deeper still", "idempotency_key": str(uuid.uuid4())}, **htmx()
    )

    reply = Comment.objects.get(body_source="Deeper still")
    assert response.status_code == 200
    assert (reply.parent, reply.root, reply.depth, reply.story) == (middle, top, 2, story)
    top.refresh_from_db()
    story.refresh_from_db()
    assert (top.thread_reply_count, story.comment_count) == (2, 3)
    assert '<span id="comments-heading" hx-swap-oob="innerHTML">Comments (3)</span>' in response.content.decode()


def test_stories_readers_cannot_see_take_no_comments_or_replies(signed_in):
    draft = StoryFactory(status=Story.Status.DRAFT)
    scheduled = StoryFactory(published_at=timezone.now() + timedelta(hours=1))
    data = {"body": "Too early", "idempotency_key": str(uuid.uuid4())}

    for hidden in (draft, scheduled):
        parent = CommentFactory(story=hidden)
        assert post_comment(signed_in, hidden, "Too early", **htmx()).status_code == 404
        assert signed_in.post(f"/comments/c/{parent.pk}/reply/", data, **htmx()).status_code == 404
    assert signed_in.post("/comments/no-such-story/post/", data, **htmx()).status_code == 404
    assert signed_in.post("/comments/c/999999/reply/", data, **htmx()).status_code == 404
    assert not Comment.objects.filter(body_source="Too early").exists()


def test_reply_page_without_javascript_shows_the_comment_and_the_form(signed_in, story):
    parent = CommentFactory(story=story, body_html="<p>The original</p>")

    html = signed_in.get(f"/comments/c/{parent.pk}/reply/").content.decode()

    assert "<html" in html
    assert "The original" in html
    assert f'action="/comments/c/{parent.pk}/reply/"' in html


# --- Editing and deleting --------------------------------------------------------------------


def test_author_edits_with_htmx_and_gets_the_updated_card(signed_in, story, author):
    comment = services.comment_create(story=story, author=author, body="Teh harbour")

    response = signed_in.post(f"/comments/c/{comment.pk}/edit/", {"body": "The harbour"}, **htmx())

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<article class="comment-card" id="comment-{comment.pk}-card">')
    assert "The harbour" in html
    assert 'class="comment-edited"' in html


def test_edit_form_is_prefilled_with_the_source(signed_in, story, author):
    comment = services.comment_create(story=story, author=author, body="Some *source*")

    html = signed_in.get(f"/comments/c/{comment.pk}/edit/", **htmx()).content.decode()

    assert ">Some *source*</textarea>" in html


def test_someone_elses_comment_cannot_be_edited_or_deleted(signed_in, story):
    comment = CommentFactory(story=story)

    edit_get = signed_in.get(f"/comments/c/{comment.pk}/edit/")
    edit_post = signed_in.post(f"/comments/c/{comment.pk}/edit/", {"body": "hijack"}, **htmx())
    delete_post = signed_in.post(f"/comments/c/{comment.pk}/delete/", **htmx())

    assert edit_get.status_code == 403
    assert (edit_post.status_code, delete_post.status_code) == (403, 403)
    assert "only edit your own" in edit_post.content.decode()
    assert "only delete your own" in delete_post.content.decode()
    comment.refresh_from_db()
    assert comment.status == Status.VISIBLE


def test_late_edit_is_refused_with_a_message(signed_in, story, author):
    comment = CommentFactory(story=story, author=author, created_at=timezone.now() - timedelta(hours=1))

    response = signed_in.post(f"/comments/c/{comment.pk}/edit/", {"body": "late"}, **htmx())

    assert response.status_code == 403
    assert "can be edited for 15 minutes" in response.content.decode()


def test_author_deletes_with_htmx_and_sees_the_tombstone_and_new_count(signed_in, story, author):
    comment = services.comment_create(story=story, author=author, body="regret")

    html = signed_in.post(f"/comments/c/{comment.pk}/delete/", **htmx()).content.decode()

    assert "[deleted]" in html and "regret" not in html
    assert "Comments (0)" in html


def test_delete_without_javascript_confirms_then_returns_to_the_thread(signed_in, story, author):
    comment = services.comment_create(story=story, author=author, body="regret")

    confirm = signed_in.get(f"/comments/c/{comment.pk}/delete/").content.decode()
    response = signed_in.post(f"/comments/c/{comment.pk}/delete/")

    assert "Delete this comment?" in confirm
    assert response["Location"] == f"/comments/{story.slug}/"


# --- Reporting -------------------------------------------------------------------------------


def test_reader_reports_a_comment_and_is_thanked(signed_in, story):
    comment = CommentFactory(story=story)

    response = signed_in.post(f"/comments/c/{comment.pk}/report/", {"reason": "spam", "detail": "ads"}, **htmx())

    assert response.status_code == 200
    assert notice_line(response) == "Thank you for the report. A moderator will look at this comment."
    assert Report.objects.get().detail == "ads"


def test_reporting_twice_or_without_a_reason_gets_a_message(signed_in, story):
    comment = CommentFactory(story=story)
    signed_in.post(f"/comments/c/{comment.pk}/report/", {"reason": "spam"}, **htmx())

    again = signed_in.post(f"/comments/c/{comment.pk}/report/", {"reason": "abuse"}, **htmx())
    no_reason = signed_in.post(f"/comments/c/{CommentFactory(story=story).pk}/report/", {}, **htmx())

    assert again.status_code == 409
    assert "already reported" in again.content.decode()
    assert no_reason.status_code == 422
    assert "Choose why" in no_reason.content.decode()


def test_unknown_comments_are_not_found(signed_in):
    for action in ("", "reply/", "edit/", "delete/", "report/"):
        assert signed_in.get(f"/comments/c/999999/{action}").status_code == 404


def test_suspended_reader_is_refused_everywhere_with_a_message(signed_in, story, author, moderator):
    own = services.comment_create(story=story, author=author, body="mine")
    other = CommentFactory(story=story)
    services.commenter_suspend(user=author, moderator=moderator, until=timezone.now() + timedelta(days=1))

    responses = [
        post_comment(signed_in, story, "again", **htmx()),
        signed_in.post(f"/comments/c/{other.pk}/reply/", {"body": "x", "idempotency_key": str(uuid.uuid4())}),
        signed_in.post(f"/comments/c/{own.pk}/edit/", {"body": "changed"}, **htmx()),
        signed_in.post(f"/comments/c/{other.pk}/report/", {"reason": "spam"}, **htmx()),
    ]

    for response in responses:
        assert response.status_code == 403
        assert "suspended from commenting until" in response.content.decode()


# --- What a post costs -------------------------------------------------------------------------


@pytest.fixture
def established_reader(signed_in, story, author, rules):
    """A reader past the new-commenter rule, posting with every rule a post passes through in use."""
    from tests.comments.utils import seed_default_rules

    seed_default_rules()
    CommentFactory(story=story, author=author, created_at=timezone.now() - timedelta(days=1))
    moderation.active_rules()  # cached, as between posts
    return signed_in


# The reader (the session comes from the cache), the story or the parent with its story, the savepoint the
# post's transaction is in a test, the reader's locked standing with their email and published comments,
# every rate and repeat window at once, then on PostgreSQL one statement writing the comment and its log entry
# and counting it (in its thread too, for a reply) and returning the story's count for the answer, and the
# savepoint's release. Elsewhere the comment, its log entry, the thread's count and the story's are a statement each.
def post_queries(*, reply: bool) -> int:
    return 7 if connection.vendor == "postgresql" else 9 + reply


def test_an_htmx_post_takes_a_fixed_number_of_queries(established_reader, story, django_assert_num_queries):
    with django_assert_num_queries(post_queries(reply=False)):
        response = post_comment(established_reader, story, "Counted queries", **htmx())

    assert response.status_code == 200
    assert notice_line(response) == "Your comment is published."
    assert "Comments (2)" in response.content.decode()


def test_an_htmx_reply_takes_a_fixed_number_of_queries_too(established_reader, story, django_assert_num_queries):
    parent = CommentFactory(story=story)
    data = {"body": "Counted reply", "idempotency_key": str(uuid.uuid4())}

    with django_assert_num_queries(post_queries(reply=True)):
        response = established_reader.post(f"/comments/c/{parent.pk}/reply/", data, **htmx())

    assert response.status_code == 200
    assert "Comments (3)" in response.content.decode()
    reply = Comment.objects.get(body_source="Counted reply")
    assert reply.root == parent
    assert reply.moderation_log.get().action == ModerationLog.Action.APPROVED
    parent.refresh_from_db()
    assert parent.thread_reply_count == 1


def test_a_post_counts_itself_last_so_other_posts_on_its_story_wait_briefly(established_reader, story):
    """Every post on a story updates the story's row, so posts on it at once wait for each other's lock on it:
    the post's write, which counts it, is the last statement before the transaction ends, and the lock is held
    no longer than that."""
    parent = CommentFactory(story=story)
    data = {"body": "Counted last", "idempotency_key": str(uuid.uuid4())}

    with CaptureQueriesContext(connection) as queries:
        response = established_reader.post(f"/comments/c/{parent.pk}/reply/", data, **htmx())

    statements = [query["sql"] for query in queries.captured_queries]
    updates = [n for n, sql in enumerate(statements) if 'UPDATE "stories_story"' in sql]
    assert response.status_code == 200
    assert len(updates) == 1
    # In a test the post's transaction is a savepoint; it ends right after the update.
    assert statements[updates[0] + 1].startswith(("RELEASE SAVEPOINT", "COMMIT"))


def test_the_answer_shows_the_count_the_stored_comments_make(established_reader, story):
    CommentFactory.create_batch(3, story=story)
    Story.objects.filter(pk=story.pk).update(comment_count=4)

    html = post_comment(established_reader, story, "Fifth", **htmx()).content.decode()

    story.refresh_from_db()
    assert story.comment_count == Comment.objects.filter(story=story, status=Status.VISIBLE).count() == 5
    assert '<span id="comments-heading" hx-swap-oob="innerHTML">Comments (5)</span>' in html


def test_a_refused_reply_shows_the_form_under_the_whole_parent(established_reader, story, rules):
    rules("banned_words", words="darn")
    parent = CommentFactory(story=story, body_html="<p>The parent's words</p>")

    response = established_reader.post(
        f"/comments/c/{parent.pk}/reply/", {"body": "darn", "idempotency_key": str(uuid.uuid4())}
    )

    html = response.content.decode()
    assert response.status_code == 422
    assert "<p>The parent's words</p>" in html
    assert f"Your reply to {parent.author.username}" in html
