"""The moderation pipeline: each rule, the story and site modes, and the log of every decision."""

from datetime import timedelta

import pytest
from django.utils import timezone

from comments import moderation, selectors, services
from comments.errors import CommentRejected, DuplicateComment, NotAllowed, RateLimited
from comments.models import Comment, Commenter, ModerationLog, ModerationRule
from stories.models import Story
from tests.comments.utils import seed_default_rules
from tests.factories import CommentFactory, StoryFactory, UserFactory

pytestmark = pytest.mark.django_db

Status = Comment.Status
Action = ModerationLog.Action


def post(story, author, body="A thoughtful comment.", **kwargs) -> Comment:
    return services.comment_create(story=story, author=author, body=body, **kwargs)


def visible_count(story) -> int:
    return Story.objects.get(pk=story.pk).comment_count


def age(comment: Comment, seconds: int) -> None:
    Comment.objects.filter(pk=comment.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))


# --- Content rules ---------------------------------------------------------------------------


def test_banned_word_rejects_with_a_clear_message_and_keeps_it_from_readers(rules, story, author):
    rule = rules("banned_words", words="darn\nblast it")

    with pytest.raises(CommentRejected) as refused:
        post(story, author, "Well, DARN that ferry.")

    assert "not allowed" in refused.value.message
    comment = Comment.objects.get(author=author)
    assert comment.status == Status.REJECTED
    assert comment.reason_code == "banned_words"
    assert visible_count(story) == 0
    entry = ModerationLog.objects.get(comment=comment)
    assert (entry.action, entry.rule, entry.reason) == (Action.REJECTED, rule, "contains the banned “darn”")


def test_banned_words_match_whole_words_and_phrases_only(rules, story, author):
    rules("banned_words", words="darn\nblast it")

    assert post(story, author, "The darning needle broke.").status == Status.VISIBLE
    with pytest.raises(CommentRejected):
        post(story, author, "Oh blast   it all.")


def test_a_trailing_star_matches_any_ending(rules, story, author):
    rules("banned_words", words="spam*")

    with pytest.raises(CommentRejected):
        post(story, author, "Buy from the spammers here.")


def test_rule_message_replaces_the_default(rules, story, author):
    rules("banned_words", words="darn", message="Please keep it civil.")

    with pytest.raises(CommentRejected) as refused:
        post(story, author, "darn")

    assert refused.value.message == "Please keep it civil."


def test_suspect_word_holds_for_review(rules, story, author):
    rules("suspect_words", words="casino*")

    comment = post(story, author, "Visit my Casinos tonight")

    assert comment.status == Status.PENDING
    assert comment.moderation_note == "contains the suspect “casinos”"
    assert visible_count(story) == 0
    assert ModerationLog.objects.get(comment=comment).action == Action.HELD


def test_more_links_than_allowed_holds_for_review(rules, story, author):
    rules("links", limit=2)

    two = post(story, author, "https://a.example.org and https://b.example.org")
    three = post(story, author, "[a](https://a.example.org) https://b.example.org https://c.example.org")

    assert two.status == Status.VISIBLE
    assert three.status == Status.PENDING
    assert three.moderation_note == "3 links, more than 2"


def test_new_commenters_first_comments_wait_until_one_is_approved(rules, story, author, moderator):
    rules("new_account", limit=1)

    first = post(story, author, "My first comment.")
    second = post(story, author, "My second comment.")
    assert (first.status, second.status) == (Status.PENDING, Status.PENDING)
    assert (first.reason_code, first.moderation_note) == ("new_account", "the commenter's first comment")

    services.comment_approve(comment=first, moderator=moderator)
    third = post(story, author, "My third comment.")

    assert third.status == Status.VISIBLE


def test_every_hold_reason_is_named_and_the_first_decides(rules, story, author):
    rules("suspect_words", words="casino")
    rules("links", limit=0)

    comment = post(story, author, "casino at https://example.org")

    assert comment.reason_code == "suspect_words"
    assert comment.moderation_note == "contains the suspect “casino”; 1 links, more than 0"


def test_inactive_rules_do_nothing(rules, story, author):
    rules("banned_words", words="darn", is_active=False)

    assert post(story, author, "darn").status == Status.VISIBLE


def test_a_rule_edited_in_the_admin_applies_to_the_next_comment(rules, story, author):
    rule = rules("suspect_words", words="casino")
    assert post(story, author, "ferry timetable").status == Status.VISIBLE

    rule.words = "ferry"
    rule.save()

    assert post(story, author, "another ferry question").status == Status.PENDING


def test_a_comment_passing_every_rule_is_published_and_logged(rules, story, author):
    comment = post(story, author)

    entry = ModerationLog.objects.get(comment=comment)
    assert (entry.action, entry.reason_code, entry.reason) == (Action.APPROVED, "passed", "passed every rule")
    assert entry.decided_by == "automatic"


# --- Pace: duplicates and rate limits --------------------------------------------------------


def test_same_text_twice_within_minutes_is_refused(rules, story, author):
    rule = rules("duplicate", window_seconds=600)
    first = post(story, author, "Great news for the harbour!")

    with pytest.raises(DuplicateComment) as refused:
        post(story, author, "great news   for the HARBOUR!")

    assert refused.value.message == "You have already posted this comment."
    assert refused.value.status == 409
    assert Comment.objects.count() == 1
    entry = ModerationLog.objects.filter(action=Action.REFUSED).get()
    assert (entry.rule, entry.subject, entry.comment) == (rule, author, None)

    age(first, 601)
    assert post(story, author, "Great news for the harbour!").status == Status.VISIBLE


def test_rate_limit_refuses_with_a_clear_message_and_when_to_retry(rules, story, author):
    rules("rate_limit", limit=1, window_seconds=15)
    post(story, author, "first")

    with pytest.raises(RateLimited) as refused:
        post(story, author, "second")

    assert refused.value.status == 429
    assert 1 <= refused.value.retry_after <= 15
    assert refused.value.message.startswith("You are commenting too quickly: at most 1 comment every 15 seconds.")
    assert ModerationLog.objects.filter(action=Action.REFUSED, reason_code="rate_limit").count() == 1


def test_rate_limit_counts_comments_whatever_became_of_them(rules, story, author):
    rules("rate_limit", limit=2, window_seconds=3600)
    services.comment_delete(comment=post(story, author, "one"), user=author)
    post(story, author, "two")

    with pytest.raises(RateLimited):
        post(story, author, "three")


def test_rate_limit_window_passes(rules, story, author):
    rules("rate_limit", limit=1, window_seconds=15)
    first = post(story, author, "first")
    age(first, 16)

    assert post(story, author, "second").status == Status.VISIBLE


def test_new_accounts_have_a_stricter_limit(rules, story, settings):
    settings.COMMENTS_NEW_ACCOUNT_DAYS = 3
    rules("rate_limit", limit=1, window_seconds=60, new_accounts_only=True)
    newcomer = UserFactory()
    regular = UserFactory(date_joined=timezone.now() - timedelta(days=30))
    post(story, newcomer, "one")
    post(story, regular, "one")

    with pytest.raises(RateLimited):
        post(story, newcomer, "two")
    assert post(story, regular, "two").status == Status.VISIBLE


def test_a_newcomer_is_told_the_limit_that_binds_and_the_true_wait(rules, story, settings):
    settings.COMMENTS_NEW_ACCOUNT_DAYS = 3
    seed_default_rules()  # one per 15 s and 30 an hour for all; one a minute and 5 an hour for newcomers
    newcomer = UserFactory()
    first = post(story, newcomer, "First!")

    with pytest.raises(RateLimited) as at_once:
        post(story, newcomer, "Second, straight away.")
    age(first, 30)
    with pytest.raises(RateLimited) as half_a_minute_later:
        post(story, newcomer, "Third, half a minute on.")
    age(first, 61)

    assert at_once.value.message == (
        "You are commenting too quickly: at most 1 comment every 1 minute. "
        f"Please try again in {at_once.value.retry_after} seconds."
    )
    assert 59 <= at_once.value.retry_after <= 60
    assert "1 minute" in half_a_minute_later.value.message
    assert 29 <= half_a_minute_later.value.retry_after <= 30
    assert post(story, newcomer, "Fourth, a minute on.").status in (Status.VISIBLE, Status.PENDING)


def test_the_wait_covers_every_limit_the_author_is_over(rules, story, author):
    rules("rate_limit", limit=1, window_seconds=15)
    rules("rate_limit", limit=3, window_seconds=3600)
    now = timezone.now()
    for minutes_ago in (50, 40, 0):
        CommentFactory(story=story, author=author, created_at=now - timedelta(minutes=minutes_ago, seconds=5))

    with pytest.raises(RateLimited) as refused:
        post(story, author, "One more.")

    # Past the 15 seconds, but the comment of 50 minutes ago keeps the hour full for another 10 minutes.
    assert 594 <= refused.value.retry_after <= 595
    assert refused.value.message == (
        "You are commenting too quickly: at most 3 comments every 1 hour. Please try again in 10 minutes."
    )


def test_when_two_limits_bind_the_one_with_the_longer_wait_is_named(rules, story, author):
    rules("rate_limit", limit=1, window_seconds=15)
    rules("rate_limit", limit=2, window_seconds=120)
    older = post(story, author, "one")
    age(older, 100)
    post(story, author, "two")

    with pytest.raises(RateLimited) as refused:
        post(story, author, "three")

    # The 15-second limit frees the author in 15 s, the 2-minute one only when "one" leaves it (20 s).
    assert 19 <= refused.value.retry_after <= 20
    assert "at most 2 comments every 2 minutes" in refused.value.message
    assert "15 seconds" not in refused.value.message


# --- Reports ---------------------------------------------------------------------------------


def test_reports_from_k_distinct_readers_hide_a_comment_pending_review(rules, story, author):
    rule = rules("reports", limit=2)
    comment = post(story, author)
    first, second = UserFactory(), UserFactory()

    services.comment_report(comment=comment, reporter=first, reason="abuse")
    comment.refresh_from_db()
    assert comment.status == Status.VISIBLE

    services.comment_report(comment=comment, reporter=second, reason="spam")
    comment.refresh_from_db()
    assert comment.status == Status.PENDING
    assert comment.reason_code == "reports"
    assert visible_count(story) == 0
    held = ModerationLog.objects.get(comment=comment, action=Action.HELD)
    assert (held.rule, held.reason) == (rule, "reported by 2 readers")


def test_reports_after_an_approval_count_afresh(rules, story, author, moderator):
    rules("reports", limit=2)
    comment = post(story, author)
    services.comment_report(comment=comment, reporter=UserFactory(), reason="abuse")
    services.comment_report(comment=comment, reporter=UserFactory(), reason="abuse")
    services.comment_approve(comment=comment, moderator=moderator)

    services.comment_report(comment=comment, reporter=UserFactory(), reason="abuse")
    comment.refresh_from_db()

    assert comment.status == Status.VISIBLE
    assert comment.open_report_count == 1


# --- Modes: story and site -------------------------------------------------------------------


def test_closed_story_refuses_comments(rules, author):
    story = StoryFactory(comments_mode=Story.CommentsMode.CLOSED)

    with pytest.raises(NotAllowed) as refused:
        post(story, author)

    assert refused.value.message == "Comments are closed on this story."


def test_premoderated_story_holds_every_comment(rules, author):
    story = StoryFactory(comments_mode=Story.CommentsMode.PREMODERATED)

    comment = post(story, author)

    assert comment.status == Status.PENDING
    assert comment.reason_code == "premoderated_story"


def test_site_wide_premoderation_holds_comments_on_open_stories(rules, story, author):
    rules("hold_all")

    assert post(story, author).reason_code == "premoderated_site"


def test_site_wide_closing_beats_an_open_story(rules, story, author):
    rules("close_all", message="Comments are paused for maintenance.")

    with pytest.raises(NotAllowed) as refused:
        post(story, author)

    assert refused.value.message == "Comments are paused for maintenance."


def test_always_premoderated_commenter_is_held(rules, story, author, moderator):
    services.commenter_set_premoderation(user=author, moderator=moderator, enabled=True)

    assert post(story, author).reason_code == "premoderated_user"


# --- Who may comment -------------------------------------------------------------------------


def test_suspended_reader_cannot_post_edit_or_report(rules, story, author, moderator):
    comment = post(story, author)
    other = CommentFactory(story=story)
    services.commenter_suspend(user=author, moderator=moderator, until=timezone.now() + timedelta(days=2))

    with pytest.raises(NotAllowed, match="suspended from commenting until"):
        post(story, author, "again")
    with pytest.raises(NotAllowed, match="suspended"):
        services.comment_edit(comment=comment, editor=author, body="changed")
    with pytest.raises(NotAllowed, match="suspended"):
        services.comment_report(comment=other, reporter=author, reason="spam")


def test_suspension_ends_by_itself(rules, story, author, moderator):
    services.commenter_suspend(user=author, moderator=moderator, until=timezone.now() + timedelta(days=1))
    Commenter.objects.filter(user=author).update(suspended_until=timezone.now() - timedelta(seconds=1))

    assert post(story, author).status == Status.VISIBLE


def test_banned_reader_cannot_post(rules, story, author, moderator):
    services.commenter_ban(user=author, moderator=moderator, reason="spam account")

    with pytest.raises(NotAllowed, match="can no longer comment"):
        post(story, author)


def test_reader_without_a_verified_email_cannot_post(rules, story):
    unverified = UserFactory(verified=False)

    with pytest.raises(NotAllowed, match="verify your email"):
        post(story, unverified)


def _banned(story, reader, moderator):
    services.commenter_ban(user=reader, moderator=moderator)


def _suspended(story, reader, moderator):
    services.commenter_suspend(user=reader, moderator=moderator, until=timezone.now() + timedelta(days=2))


def _unverified(story, reader, moderator):
    reader.emailaddress_set.update(verified=False)


def _story_closed(story, reader, moderator):
    Story.objects.filter(pk=story.pk).update(comments_mode=Story.CommentsMode.CLOSED)


def _site_closed(story, reader, moderator):
    ModerationRule.objects.create(name="Closed for the election", kind="close_all", message="Back on Monday.")
    moderation.forget_cached_rules()


@pytest.mark.parametrize(
    ("setup", "code", "message"),
    [
        (_banned, "banned", "Your account can no longer comment."),
        (_suspended, "suspended", "Your account is suspended from commenting until"),
        (_unverified, "not_verified", "Please verify your email address before commenting."),
        (_story_closed, "closed", "Comments are closed on this story."),
        (_site_closed, "closed", "Back on Monday."),
    ],
)
def test_the_thread_and_the_pipeline_give_one_answer_to_who_may_comment(
    rules, story, author, moderator, rf, setup, code, message
):
    setup(story, author, moderator)
    story.refresh_from_db()
    request = rf.get("/")
    request.user = author

    viewer = selectors.viewer_for(request, story, moderation.active_rules())
    with pytest.raises(NotAllowed) as refused:
        post(story, author)

    assert not viewer.can_post
    assert viewer.notice.startswith(message)
    assert refused.value.message == viewer.notice
    assert refused.value.code == code


def test_a_banned_reader_is_told_so_rather_than_asked_to_verify_their_email(rules, story, author, moderator):
    _unverified(story, author, moderator)
    _banned(story, author, moderator)

    with pytest.raises(NotAllowed, match="can no longer comment"):
        post(story, author)


def test_reporting_asks_the_same_question_without_the_story(rules, story, author, other_reader, moderator):
    comment = CommentFactory(story=story, author=other_reader)
    _story_closed(story, author, moderator)
    _unverified(story, author, moderator)

    with pytest.raises(NotAllowed) as refused:
        services.comment_report(comment=comment, reporter=author, reason="spam")
    author.emailaddress_set.update(verified=True)

    assert refused.value.message == "Please verify your email address before reporting comments."
    assert services.comment_report(comment=comment, reporter=author, reason="spam").pk  # closed stories too


# --- Edits are moderated again ---------------------------------------------------------------


def test_edit_adding_a_suspect_word_sends_the_comment_back_for_review(rules, story, author):
    rules("suspect_words", words="casino")
    comment = post(story, author, "All fine.")

    edited = services.comment_edit(comment=comment, editor=author, body="All fine, visit my casino.")

    assert edited.status == Status.PENDING
    assert visible_count(story) == 0
    assert ModerationLog.objects.filter(comment=comment, action=Action.EDITED).get().reason_code == "suspect_words"


def test_edit_adding_a_banned_word_is_refused_and_changes_nothing(rules, story, author):
    rules("banned_words", words="darn")
    comment = post(story, author, "All fine.")

    with pytest.raises(CommentRejected):
        services.comment_edit(comment=comment, editor=author, body="All darn fine.")

    comment.refresh_from_db()
    assert (comment.body_source, comment.status, comment.edited_at) == ("All fine.", Status.VISIBLE, None)
    assert ModerationLog.objects.filter(comment=comment, action=Action.REFUSED).exists()


def test_edit_does_not_publish_a_comment_still_awaiting_moderation(rules, story, author):
    rules("new_account", limit=1)
    comment = post(story, author, "first")

    assert services.comment_edit(comment=comment, editor=author, body="first, edited").status == Status.PENDING


# --- The rules a new site starts with --------------------------------------------------------


def test_default_rules_hold_a_new_readers_first_comment_and_limit_their_pace(rules, story, author):
    seed_default_rules()
    assert ModerationRule.objects.filter(is_active=True).count() >= 8

    first = post(story, author, "Hello, first time here.")
    assert first.status == Status.PENDING
    with pytest.raises(RateLimited):
        post(story, author, "And again.")


# --- Who counts as a new commenter -----------------------------------------------------------


def test_a_moderators_first_comment_is_published(rules, story, moderator):
    rules("new_account", limit=1)

    assert post(story, moderator, "Welcome to the comments, everyone.").status == Status.VISIBLE


def test_a_moderator_who_is_not_staff_is_not_held_either(rules, story, moderator):
    rules("new_account", limit=1)
    moderator.is_staff = False
    moderator.save(update_fields=["is_staff"])

    assert post(story, moderator).status == Status.VISIBLE


def test_a_staff_members_first_comment_is_published(rules, story):
    rules("new_account", limit=1)

    assert post(story, UserFactory(username="editor", is_staff=True)).status == Status.VISIBLE


def test_trusted_staff_are_still_held_by_the_other_rules(rules, story, moderator):
    rules("new_account", limit=1)
    rules("suspect_words", words="casino")

    comment = post(story, moderator, "the casino by the harbour")

    assert (comment.status, comment.reason_code) == (Status.PENDING, "suspect_words")


def _approved_comments(story, author, moderator, count: int) -> None:
    for number in range(count):
        held = post(story, author, f"Held comment number {number}.")
        assert held.status == Status.PENDING
        services.comment_approve(comment=held, moderator=moderator)


def test_a_reader_with_enough_approved_comments_is_trusted(rules, story, author, moderator, settings):
    settings.COMMENTS_TRUSTED_AFTER_APPROVALS = 3
    rules("new_account", limit=10)
    _approved_comments(story, author, moderator, 3)

    assert post(story, author, "Now I am a regular.").status == Status.VISIBLE


def test_a_reader_one_approval_short_is_still_held(rules, story, author, moderator, settings):
    settings.COMMENTS_TRUSTED_AFTER_APPROVALS = 3
    rules("new_account", limit=10)
    _approved_comments(story, author, moderator, 2)

    comment = post(story, author, "Not quite a regular yet.")

    assert (comment.status, comment.reason_code) == (Status.PENDING, "new_account")


def test_approving_the_same_comment_twice_counts_once(rules, story, author, moderator, settings):
    settings.COMMENTS_TRUSTED_AFTER_APPROVALS = 2
    rules("new_account", limit=10)
    held = post(story, author, "Approved, removed, approved again.")
    services.comment_approve(comment=held, moderator=moderator)
    services.comment_remove(comment=held, moderator=moderator, reason_code="other")
    services.comment_approve(comment=held, moderator=moderator)

    assert post(story, author, "Still new.").status == Status.PENDING


def test_the_log_names_the_reader_who_reported(rules, story, author, other_reader):
    comment = post(story, author)

    services.comment_report(comment=comment, reporter=other_reader, reason="spam")

    entry = ModerationLog.objects.get(comment=comment, action=Action.REPORTED)
    assert entry.decided_by == "bea"


def test_a_report_whose_reader_deleted_their_account_is_by_a_reader(rules, story, author, other_reader):
    comment = post(story, author)
    services.comment_report(comment=comment, reporter=other_reader, reason="spam")

    other_reader.delete()

    assert ModerationLog.objects.get(comment=comment, action=Action.REPORTED).decided_by == "a reader"
