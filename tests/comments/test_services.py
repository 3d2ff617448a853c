"""Readers' and moderators' actions on comments, and the counts readers see staying true."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from comments import services
from comments.errors import (
    AlreadyReported,
    CommentRejected,
    InvalidComment,
    ModerationError,
    NotAllowed,
    RateLimited,
)
from comments.models import Comment, ModerationLog, Report
from stories.models import Story
from tests.factories import CommentFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules")]

Status = Comment.Status
Action = ModerationLog.Action


def post(story, author, body="A thoughtful comment.", **kwargs) -> Comment:
    return services.comment_create(story=story, author=author, body=body, **kwargs)


def assert_counts_match_what_readers_see(story: Story) -> None:
    story.refresh_from_db()
    assert story.comment_count == Comment.objects.filter(story=story, status=Status.VISIBLE).count()
    for root in Comment.objects.filter(story=story, parent__isnull=True):
        published_replies = Comment.objects.filter(root=root, status=Status.VISIBLE).count()
        assert root.thread_reply_count == published_replies, f"thread {root.pk}"


# --- Posting ---------------------------------------------------------------------------------


def test_posting_stores_the_source_and_the_rendered_html(story, author):
    comment = post(story, author, "Trams *at last*")

    assert comment.body_source == "Trams *at last*"
    assert comment.body_html == "<p>Trams <em>at last</em></p>\n"
    assert comment.status == Status.VISIBLE
    assert_counts_match_what_readers_see(story)


def test_replies_join_their_threads_root_and_depth(story, author, other_reader):
    top = post(story, author)
    reply = post(story, other_reader, "reply", parent=top)
    deeper = post(story, author, "deeper", parent=reply)

    assert (reply.root_id, reply.depth) == (top.pk, 1)
    assert (deeper.root_id, deeper.depth) == (top.pk, 2)
    assert_counts_match_what_readers_see(story)


def test_text_is_trimmed_and_must_not_be_empty(story, author):
    with pytest.raises(InvalidComment, match="Write something"):
        post(story, author, "   \n  ")


def test_length_limit_says_how_long_the_comment_is(story, author, settings):
    settings.COMMENTS_MAX_LENGTH = 100

    with pytest.raises(InvalidComment) as refused:
        post(story, author, "x" * 130)

    assert refused.value.message == "Comments can be at most 100 characters long; this one has 130."


def test_cannot_reply_to_a_comment_that_is_not_published(story, author, other_reader):
    pending = CommentFactory(story=story, status=Status.PENDING)

    with pytest.raises(InvalidComment, match="only reply to a published comment"):
        post(story, other_reader, "hello", parent=pending)


def test_cannot_reply_across_stories(story, author):
    elsewhere = CommentFactory()

    with pytest.raises(InvalidComment):
        post(story, author, "hello", parent=elsewhere)


def test_submitting_the_same_form_twice_posts_once(story, author):
    key = uuid.uuid4()

    first = post(story, author, "Only once", idempotency_key=key)
    second = post(story, author, "Only once", idempotency_key=key)

    assert first == second
    assert Comment.objects.count() == 1
    assert_counts_match_what_readers_see(story)


def test_someone_elses_form_key_is_refused(story, author, other_reader):
    key = uuid.uuid4()
    post(story, author, "mine", idempotency_key=key)

    with pytest.raises(InvalidComment, match="already used"):
        post(story, other_reader, "theirs", idempotency_key=key)


def test_replayed_rejection_is_rejected_again(rules, story, author):
    rules("banned_words", words="darn")
    key = uuid.uuid4()
    with pytest.raises(CommentRejected):
        post(story, author, "darn", idempotency_key=key)

    with pytest.raises(CommentRejected):
        post(story, author, "darn", idempotency_key=key)
    assert Comment.objects.count() == 1


def test_a_form_sent_again_within_the_repeat_window_gets_its_comment_back(rules, story, author):
    rules("duplicate", window_seconds=600)
    key = uuid.uuid4()
    first = post(story, author, "Said once", idempotency_key=key)

    again = post(story, author, "Said once", idempotency_key=key)

    assert again == first
    assert not ModerationLog.objects.filter(action=Action.REFUSED).exists()
    assert_counts_match_what_readers_see(story)


def test_a_form_sent_again_past_the_rate_limit_gets_its_comment_back(rules, story, author):
    rules("rate_limit", limit=1, window_seconds=60)
    key = uuid.uuid4()
    first = post(story, author, "Quick one", idempotency_key=key)

    again = post(story, author, "Quick one", idempotency_key=key)

    assert again == first
    assert Comment.objects.count() == 1
    assert not ModerationLog.objects.filter(action=Action.REFUSED).exists()


def test_a_new_form_past_the_rate_limit_is_still_refused_and_logged(rules, story, author):
    rules("rate_limit", limit=1, window_seconds=60)
    post(story, author, "Quick one")

    with pytest.raises(RateLimited):
        post(story, author, "And another")

    assert ModerationLog.objects.filter(action=Action.REFUSED).count() == 1


def test_new_commenter_rules_count_the_published_comments_the_highest_limit_asks_for(rules, story, author, moderator):
    rules("new_account", limit=1)
    rules("new_account", limit=2)
    held = post(story, author, "First words")
    services.comment_approve(comment=held, moderator=moderator)

    second = post(story, author, "Second words")
    services.comment_approve(comment=second, moderator=moderator)
    third = post(story, author, "Third words")

    assert second.status == Status.PENDING
    assert "first 2 comments" in second.moderation_note
    assert "first comment" not in second.moderation_note
    assert third.status == Status.VISIBLE


def test_posting_leaves_the_story_at_the_count_it_made(story, author):
    Story.objects.filter(pk=story.pk).update(comment_count=41)

    post(story, author, "The forty-second")

    assert story.comment_count == 42
    assert Story.objects.get(pk=story.pk).comment_count == 42


def test_no_ip_address_is_stored_in_clear(story, author):
    comment = post(story, author, ip_address="203.0.113.7")

    assert comment.author_ip_hash
    assert "203.0.113.7" not in comment.author_ip_hash
    assert post(story, UserFactory(), "other", ip_address="203.0.113.7").author_ip_hash == comment.author_ip_hash
    assert post(story, UserFactory(), "third", ip_address="203.0.113.8").author_ip_hash != comment.author_ip_hash


# --- Editing ---------------------------------------------------------------------------------


def test_author_edits_within_the_window_and_the_comment_is_marked_edited(story, author):
    comment = post(story, author, "Teh ferry")

    edited = services.comment_edit(comment=comment, editor=author, body="The ferry")

    assert edited.body_html == "<p>The ferry</p>\n"
    assert edited.edited_at is not None
    assert ModerationLog.objects.filter(comment=comment, action=Action.EDITED).exists()


def test_edit_window_closes(story, author, settings):
    settings.COMMENTS_EDIT_WINDOW_SECONDS = 15 * 60
    comment = post(story, author)
    Comment.objects.filter(pk=comment.pk).update(created_at=timezone.now() - timedelta(minutes=16))

    with pytest.raises(NotAllowed, match="edited for 15 minutes"):
        services.comment_edit(comment=comment, editor=author, body="too late")


def test_only_the_author_edits(story, author, other_reader):
    comment = post(story, author)

    with pytest.raises(NotAllowed, match="only edit your own"):
        services.comment_edit(comment=comment, editor=other_reader, body="hijacked")


# --- Deleting --------------------------------------------------------------------------------


def test_author_deletes_and_a_tombstone_keeps_the_replies(story, author, other_reader):
    top = post(story, author, "secret")
    reply = post(story, other_reader, "answer", parent=top)

    services.comment_delete(comment=top, user=author)

    top.refresh_from_db()
    assert (top.status, top.body_source, top.body_html) == (Status.DELETED, "", "")
    assert Comment.objects.get(pk=reply.pk).parent_id == top.pk
    assert_counts_match_what_readers_see(story)
    assert ModerationLog.objects.get(comment=top, action=Action.DELETED).decided_by == "author"


def test_only_the_author_deletes(story, author, other_reader):
    comment = post(story, author)

    with pytest.raises(NotAllowed, match="only delete your own"):
        services.comment_delete(comment=comment, user=other_reader)


def test_deleting_twice_is_harmless(story, author):
    comment = post(story, author)
    services.comment_delete(comment=comment, user=author)
    services.comment_delete(comment=comment, user=author)

    assert_counts_match_what_readers_see(story)


# --- Reporting -------------------------------------------------------------------------------


def test_report_is_recorded_with_its_reason(story, author, other_reader):
    comment = post(story, author)

    report = services.comment_report(comment=comment, reporter=other_reader, reason="off_topic", detail=" about buses ")

    assert (report.reason, report.detail, report.resolution) == ("off_topic", "about buses", "")
    comment.refresh_from_db()
    assert comment.open_report_count == 1


def test_a_reader_reports_a_comment_once(story, author, other_reader):
    comment = post(story, author)
    services.comment_report(comment=comment, reporter=other_reader, reason="spam")

    with pytest.raises(AlreadyReported):
        services.comment_report(comment=comment, reporter=other_reader, reason="abuse")
    assert Report.objects.count() == 1


def test_authors_cannot_report_themselves(story, author):
    with pytest.raises(NotAllowed, match="your own"):
        services.comment_report(comment=post(story, author), reporter=author, reason="spam")


def test_report_needs_a_known_reason(story, author, other_reader):
    with pytest.raises(InvalidComment, match="Choose why"):
        services.comment_report(comment=post(story, author), reporter=other_reader, reason="boring")


# --- Moderators ------------------------------------------------------------------------------


def test_approving_publishes_dismisses_reports_and_logs_who(story, author, other_reader, moderator):
    comment = CommentFactory(story=story, author=author, status=Status.PENDING)
    Report.objects.create(comment=comment, reporter=other_reader, reason="spam")
    Comment.objects.filter(pk=comment.pk).update(open_report_count=1)

    services.comment_approve(comment=comment, moderator=moderator)

    comment.refresh_from_db()
    assert comment.status == Status.VISIBLE
    assert comment.open_report_count == 0
    assert Report.objects.get().resolution == Report.Resolution.DISMISSED
    entry = ModerationLog.objects.get(comment=comment, action=Action.APPROVED)
    assert entry.moderator == moderator
    assert entry.decided_by == "mod"
    assert_counts_match_what_readers_see(story)


@pytest.mark.parametrize(
    ("decide", "status", "code"),
    [
        (lambda c, m: services.comment_reject(comment=c, moderator=m, reason_code="abuse"), Status.REJECTED, "abuse"),
        (lambda c, m: services.comment_mark_spam(comment=c, moderator=m), Status.REJECTED, "spam"),
        (
            lambda c, m: services.comment_remove(comment=c, moderator=m, reason_code="off_topic"),
            Status.REMOVED,
            "off_topic",
        ),
    ],
)
def test_taking_down_records_the_reason_and_upholds_reports(
    story, author, other_reader, moderator, decide, status, code
):
    comment = post(story, author)
    services.comment_report(comment=comment, reporter=other_reader, reason="abuse")

    decide(comment, moderator)

    comment.refresh_from_db()
    assert (comment.status, comment.reason_code) == (status, code)
    assert Report.objects.get().resolution == Report.Resolution.UPHELD
    assert ModerationLog.objects.filter(comment=comment, moderator=moderator, reason_code=code).exists()
    assert_counts_match_what_readers_see(story)


def test_a_reason_code_is_required_to_reject(story, author, moderator):
    with pytest.raises(ModerationError, match="Choose a reason"):
        services.comment_reject(comment=post(story, author), moderator=moderator, reason_code="")


def test_a_comment_its_author_deleted_cannot_be_approved(story, author, moderator):
    comment = post(story, author)
    services.comment_delete(comment=comment, user=author)

    with pytest.raises(ModerationError, match="deleted"):
        services.comment_approve(comment=comment, moderator=moderator)


def test_ban_can_reject_everything_the_reader_has_up_or_waiting(story, author, other_reader, moderator):
    published = post(story, author, "one")
    reply = post(story, author, "two", parent=post(story, other_reader, "root"))
    waiting = CommentFactory(story=story, author=author, status=Status.PENDING)

    rejected = services.commenter_ban(user=author, moderator=moderator, reason="troll", reject_comments=True)

    assert rejected == 3
    for comment in (published, reply, waiting):
        comment.refresh_from_db()
        assert (comment.status, comment.reason_code) == (Status.REJECTED, "banned")
    assert_counts_match_what_readers_see(story)
    assert ModerationLog.objects.filter(subject=author, action=Action.BANNED, moderator=moderator).exists()


def test_suspension_must_end_in_the_future(author, moderator):
    with pytest.raises(ModerationError, match="future"):
        services.commenter_suspend(user=author, moderator=moderator, until=timezone.now() - timedelta(days=1))


def test_reinstating_lifts_ban_and_suspension(story, author, moderator):
    services.commenter_ban(user=author, moderator=moderator)
    services.commenter_suspend(user=author, moderator=moderator, until=timezone.now() + timedelta(days=1))

    services.commenter_reinstate(user=author, moderator=moderator, reason="appeal accepted")

    assert post(story, author).status == Status.VISIBLE
    assert ModerationLog.objects.filter(subject=author, action=Action.REINSTATED, reason="appeal accepted").exists()


def test_counts_stay_true_through_a_mixed_history(story, author, other_reader, moderator):
    readers = [author, other_reader, *UserFactory.create_batch(3)]
    comments = []
    for index, reader in enumerate(readers * 3):
        parent = comments[index // 2] if comments and index % 3 else None
        comments.append(post(story, reader, f"comment {index}", parent=parent))
    services.comment_delete(comment=comments[0], user=comments[0].author)
    services.comment_remove(comment=comments[3], moderator=moderator, reason_code="abuse")
    services.comment_reject(comment=comments[5], moderator=moderator, reason_code="spam")
    services.comment_approve(comment=comments[5], moderator=moderator)
    services.comment_mark_spam(comment=comments[7], moderator=moderator)
    services.author_comments_erase(user=readers[4])

    assert_counts_match_what_readers_see(story)


# --- Visitors' cached pages ------------------------------------------------------------------


def test_a_new_comment_invalidates_cached_visitor_pages(
    client, story, author, settings, django_capture_on_commit_callbacks
):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    client.get(f"/comments/{story.slug}/thread/")
    assert client.get(f"/comments/{story.slug}/thread/")["X-Page-Cache"] == "hit"

    with django_capture_on_commit_callbacks(execute=True):
        post(story, author, "Fresh news")

    response = client.get(f"/comments/{story.slug}/thread/")
    assert "X-Page-Cache" not in response
    assert "Fresh news" in response.content.decode()
