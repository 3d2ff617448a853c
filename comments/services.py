"""Every write to comments: posting, editing, deleting and reporting; moderators' decisions on comments and
commenters; erasing an account's comments.

Views, admin actions and tasks call these and nothing else writes. Each keeps the counts readers see
(`Story.comment_count`, a thread's `thread_reply_count`) equal to what is published, records its
decision in the moderation log, and leaves anything that can wait (mail, cache invalidation) to after
the commit. Locks are always taken in one order: commenter, comment, thread root, story.
"""

import functools
import hashlib
import logging
import time
import uuid
from collections import Counter
from datetime import datetime

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Field, Model
from django.db.models.signals import post_save
from django.utils import timezone
from kombu.exceptions import OperationalError

from newsreader.database import planned_once
from newsreader.ratelimits import count_in_window
from stories import pagecache
from stories.models import Story

from . import moderation, notifications, selectors, tasks
from .errors import (
    AlreadyReported,
    CommentRejected,
    DuplicateComment,
    InvalidComment,
    ModerationError,
    NotAllowed,
    RateLimited,
)
from .markup import fingerprint, render_comment
from .models import (
    MODERATE_PERMISSION,
    MODERATOR_REASONS,
    Comment,
    Commenter,
    ModerationLog,
    ReasonCode,
    Recommendation,
    Report,
)

logger = logging.getLogger(__name__)

Status = Comment.Status
Action = ModerationLog.Action

RECOMMENDATION_WINDOW_SECONDS = 3600

_STATUS_ACTIONS = {
    Status.VISIBLE: Action.APPROVED,
    Status.PENDING: Action.HELD,
    Status.REJECTED: Action.REJECTED,
}


# --- Readers ---------------------------------------------------------------------------------


def comment_create(
    *,
    story: Story,
    author: AbstractBaseUser,
    body: str,
    parent: Comment | None = None,
    idempotency_key: uuid.UUID | None = None,
    ip_address: str = "",
) -> Comment:
    """Post a comment or a reply. Returns it published or awaiting moderation; raises a `CommentError`
    when refused (`RateLimited`, `DuplicateComment`, `NotAllowed`…) or rejected (`CommentRejected`).

    Submitting the same form twice (same `idempotency_key`) returns the comment the first submit made.
    A published comment leaves `story.comment_count` at the count it made.
    """
    text = _checked_text(body)
    if parent is not None and (parent.story_id != story.pk or parent.status != Status.VISIBLE):
        raise InvalidComment("You can only reply to a published comment on this story.")
    html = render_comment(text)
    key = idempotency_key or uuid.uuid4()
    now = timezone.now()
    rules = moderation.active_rules()

    try:
        with transaction.atomic():
            commenter, verified = _lock_commenter(author, count_published_up_to=moderation.new_commenter_limit(rules))
            submission = moderation.Submission(
                author_id=author.pk,
                author_joined=author.date_joined,
                commenter=commenter,
                email_verified=verified,
                story=story,
                text=text,
                html=html,
                fingerprint=fingerprint(text),
                published_comments=commenter.published_comments,
            )
            decision = moderation.moderate_new(submission=submission, rules=rules, now=now)
            if decision.verdict == moderation.Verdict.REFUSE:
                # A form sent again is refused as a repeat (same text, too soon): answer with its comment.
                existing = _by_key(key)
                if existing is not None:
                    return _replayed(existing, author)
                _log(Action.REFUSED, decision=decision, story=story, subject=author)
                comment = None
            else:
                comment = _insert(submission, decision, parent=parent, key=key, ip_address=ip_address, now=now)
    except IntegrityError:
        # The form's key is taken: it was sent before (its comment is the answer), or twice at once and
        # this submit lost the race to itself. The unique key, not a look-up first, tells a new form.
        existing = _by_key(key)
        if existing is None:
            raise
        return _replayed(existing, author)

    if comment is None:
        raise _refusal(decision)
    if comment.status == Status.REJECTED:
        raise CommentRejected(decision.message, code=decision.reason_code)
    return comment


def comment_edit(*, comment: Comment, editor: AbstractBaseUser, body: str) -> Comment:
    """The author changes their text within the edit window; the new text is moderated again."""
    text = _checked_text(body)
    html = render_comment(text)
    now = timezone.now()
    rules = moderation.active_rules()
    with transaction.atomic():
        commenter, verified = _lock_commenter(editor)
        comment = _lock(comment)
        if comment.author_id != editor.pk:
            raise NotAllowed("You can only edit your own comments.")
        if comment.status not in (Status.VISIBLE, Status.PENDING):
            raise NotAllowed("This comment can no longer be edited.")
        if now >= comment.editable_until():
            minutes = settings.COMMENTS_EDIT_WINDOW_SECONDS // 60
            raise NotAllowed(f"Comments can be edited for {minutes} minutes after posting; this one no longer can.")
        if text == comment.body_source:
            return comment
        submission = moderation.Submission(
            author_id=editor.pk,
            author_joined=editor.date_joined,
            commenter=commenter,
            email_verified=verified,
            story=comment.story,
            text=text,
            html=html,
            fingerprint=fingerprint(text),
        )
        decision = moderation.moderate_edit(submission=submission, rules=rules, now=now)
        if decision.verdict in (moderation.Verdict.REFUSE, moderation.Verdict.REJECT):
            _log(Action.REFUSED, decision=decision, story=comment.story, subject=editor, comment=comment)
        else:
            comment.body_source, comment.body_html, comment.body_hash = text, html, submission.fingerprint
            comment.edited_at = now
            comment.save(update_fields=["body_source", "body_html", "body_hash", "edited_at"])
            if decision.verdict == moderation.Verdict.HOLD:
                _set_status(comment, Status.PENDING, reason_code=decision.reason_code, note=decision.reason)
            _log(Action.EDITED, decision=decision, story=comment.story, subject=editor, comment=comment)
            _on_commit_discussion_changed(comment)
    if decision.verdict == moderation.Verdict.REJECT:
        raise CommentRejected(decision.message, code=decision.reason_code)
    if decision.verdict == moderation.Verdict.REFUSE:
        raise _refusal(decision)
    return comment


def comment_delete(*, comment: Comment, user: AbstractBaseUser) -> Comment:
    """The author withdraws their comment: its text is erased and a "[deleted]" tombstone keeps its replies."""
    with transaction.atomic():
        comment = _lock(comment)
        if comment.author_id != user.pk:
            raise NotAllowed("You can only delete your own comments.")
        if comment.status == Status.DELETED:
            return comment
        _set_status(comment, Status.DELETED, reason_code=ReasonCode.AUTHOR, note="")
        _log(Action.DELETED, story_id=comment.story_id, subject=user, comment=comment, reason_code=ReasonCode.AUTHOR)
    return comment


def comment_report(*, comment: Comment, reporter: AbstractBaseUser, reason: str, detail: str = "") -> Report:
    """A reader flags a published comment. Reports from enough distinct readers hide it until reviewed."""
    if reason not in Report.Reason.values:
        raise InvalidComment("Choose why you are reporting this comment.")
    rules = moderation.active_rules()
    now = timezone.now()
    with transaction.atomic():
        commenter, verified = _lock_commenter(reporter)
        refusal = moderation.refusal(
            commenter=commenter, email_verified=verified, story=None, rules=rules, now=now, doing="reporting comments"
        )
        if refusal is not None:
            raise NotAllowed(refusal.message, code=refusal.reason_code)
        comment = _lock(comment)
        if comment.author_id == reporter.pk:
            raise NotAllowed("You cannot report your own comment.")
        if comment.status != Status.VISIBLE:
            raise InvalidComment("This comment is not published, so there is nothing to report.")
        if Report.objects.filter(comment=comment, reporter=reporter).exists():
            raise AlreadyReported("You have already reported this comment. A moderator will look at it.")
        report = Report.objects.create(
            comment=comment, reporter=reporter, reason=reason, detail=detail.strip()[:500], created_at=now
        )
        comment.open_report_count += 1
        comment.save(update_fields=["open_report_count"])
        _log(
            Action.REPORTED,
            story_id=comment.story_id,
            subject_id=comment.author_id,
            comment=comment,
            reporter=reporter,
            reason_code=reason,
            reason=report.detail,
        )
        threshold = moderation.report_threshold(rules)
        if threshold is not None and comment.open_report_count >= threshold:
            rule = next(rule for rule in rules if rule.kind == moderation.Kind.REPORTS and rule.limit == threshold)
            note = f"reported by {comment.open_report_count} readers"
            _set_status(comment, Status.PENDING, reason_code=ReasonCode.REPORTS, note=note)
            decision = moderation.Decision(moderation.Verdict.HOLD, ReasonCode.REPORTS, note, rule=rule)
            _log(
                Action.HELD, decision=decision, story_id=comment.story_id, subject_id=comment.author_id, comment=comment
            )
    return report


# --- Readers: recommendations ------------------------------------------------------------------


def comment_recommend(*, comment: Comment, reader: AbstractBaseUser) -> Comment:
    """The reader recommends someone else's published comment, once: recommending it again changes nothing.
    Returns the comment with its count as it now stands."""
    return _set_recommended(comment, reader, recommended=True)


def comment_unrecommend(*, comment: Comment, reader: AbstractBaseUser) -> Comment:
    """The reader takes their recommendation back; without one, nothing changes. Returns the comment."""
    return _set_recommended(comment, reader, recommended=False)


def _set_recommended(comment: Comment, reader: AbstractBaseUser, *, recommended: bool) -> Comment:
    """Both directions count towards COMMENTS_RECOMMENDATIONS_PER_HOUR. The reader's commenter row, locked
    first, serialises their own recommendations; the comment's row, locked next, keeps its count equal to
    its recommendations however many readers click at once."""
    _count_recommendation(reader)
    rules = moderation.active_rules()
    with transaction.atomic():
        commenter, verified = _lock_commenter(reader)
        if recommended:
            refusal = moderation.refusal(
                commenter=commenter,
                email_verified=verified,
                story=None,
                rules=rules,
                now=timezone.now(),
                doing="recommending comments",
            )
            if refusal is not None:
                raise NotAllowed(refusal.message, code=refusal.reason_code)
        comment = _lock(comment)
        if recommended:
            if comment.author_id == reader.pk:
                raise NotAllowed("You cannot recommend your own comment.")
            if comment.status != Status.VISIBLE:
                raise InvalidComment("Only published comments can be recommended.")
            _, changed = Recommendation.objects.get_or_create(comment=comment, reader=reader)
        else:
            changed, _ = Recommendation.objects.filter(comment=comment, reader=reader).delete()
        if changed:
            delta = 1 if recommended else -1
            Comment.objects.filter(pk=comment.pk).update(recommendation_count=F("recommendation_count") + delta)
            comment.recommendation_count += delta
            _on_commit_discussion_changed(comment)
    return comment


def _count_recommendation(reader: AbstractBaseUser) -> None:
    attempts = count_in_window(f"comment-recommendations:{reader.pk}", window_seconds=RECOMMENDATION_WINDOW_SECONDS)
    limit = settings.COMMENTS_RECOMMENDATIONS_PER_HOUR
    if attempts.over(limit):
        raise RateLimited(
            f"You can recommend or take back recommendations {limit} times an hour. "
            f"Please try again in {max(1, round(attempts.resets_in / 60))} minutes.",
            code=ReasonCode.RATE_LIMIT,
            retry_after=attempts.resets_in,
        )


# --- Moderators: comments --------------------------------------------------------------------


def comment_pick(*, comment: Comment, moderator: AbstractBaseUser, picked: bool) -> Comment:
    """Make a published comment an editors' pick (`picked`), or stop it being one; picking it again changes
    nothing. Only moderators may; each change is logged."""
    if not moderator.has_perm(MODERATE_PERMISSION):
        raise NotAllowed("Only moderators can choose editors' picks.")
    with transaction.atomic():
        comment = _lock(comment)
        if comment.is_picked == picked:
            return comment
        if picked and comment.status != Status.VISIBLE:
            raise ModerationError("Only a published comment can be an editors' pick.")
        comment.is_picked = picked
        comment.picked_at = timezone.now() if picked else None
        comment.save(update_fields=["is_picked", "picked_at"])
        _log(
            Action.PICKED if picked else Action.UNPICKED,
            story_id=comment.story_id,
            subject_id=comment.author_id,
            comment=comment,
            moderator=moderator,
        )
        _on_commit_discussion_changed(comment)
    return comment


def comment_approve(*, comment: Comment, moderator: AbstractBaseUser, note: str = "") -> Comment:
    """Publish a held, rejected or removed comment, or keep a reported one up: its open reports are dismissed."""
    with transaction.atomic():
        comment = _lock(comment)
        if comment.status == Status.DELETED:
            raise ModerationError("Its author deleted this comment; there is nothing to approve.")
        became_visible = comment.status != Status.VISIBLE
        _set_status(comment, Status.VISIBLE, reason_code="", note=note, moderated=True)
        _resolve_reports(comment, Report.Resolution.DISMISSED)
        _log(
            Action.APPROVED,
            story_id=comment.story_id,
            subject_id=comment.author_id,
            comment=comment,
            moderator=moderator,
            reason=note,
        )
        if became_visible and comment.parent_id:
            transaction.on_commit(queue_reply_mail)
    return comment


def comment_reject(*, comment: Comment, moderator: AbstractBaseUser, reason_code: str, note: str = "") -> Comment:
    """Keep a comment from readers for a reason; its open reports are upheld."""
    return _take_down(comment, moderator, Status.REJECTED, Action.REJECTED, reason_code, note)


def comment_mark_spam(*, comment: Comment, moderator: AbstractBaseUser) -> Comment:
    return _take_down(comment, moderator, Status.REJECTED, Action.REJECTED, ReasonCode.SPAM, "marked as spam")


def comment_remove(*, comment: Comment, moderator: AbstractBaseUser, reason_code: str, note: str = "") -> Comment:
    """Take down a published comment; a "[removed]" tombstone keeps its replies in place."""
    return _take_down(comment, moderator, Status.REMOVED, Action.REMOVED, reason_code, note)


def _take_down(comment: Comment, moderator, status: str, action: str, reason_code: str, note: str) -> Comment:
    if reason_code not in MODERATOR_REASONS:
        raise ModerationError("Choose a reason: spam, abuse, off-topic or other.")
    with transaction.atomic():
        comment = _lock(comment)
        if comment.status == Status.DELETED:
            raise ModerationError("Its author deleted this comment already.")
        _set_status(comment, status, reason_code=reason_code, note=note, moderated=True)
        _resolve_reports(comment, Report.Resolution.UPHELD)
        _log(
            action,
            story_id=comment.story_id,
            subject_id=comment.author_id,
            comment=comment,
            moderator=moderator,
            reason_code=reason_code,
            reason=note,
        )
    return comment


# --- Moderators: commenters ------------------------------------------------------------------


def commenter_suspend(
    *, user: AbstractBaseUser, moderator: AbstractBaseUser, until: datetime, reason: str = ""
) -> Commenter:
    """No posting, editing or reporting until `until`."""
    if until <= timezone.now():
        raise ModerationError("A suspension must end in the future.")
    with transaction.atomic():
        commenter, _ = _lock_commenter(user)
        commenter.suspended_until = until
        commenter.moderation_note = reason
        commenter.save(update_fields=["suspended_until", "moderation_note", "updated_at"])
        detail = f"until {until:%Y-%m-%d %H:%M %Z}" + (f": {reason}" if reason else "")
        _log(Action.SUSPENDED, subject=user, moderator=moderator, reason_code=ReasonCode.SUSPENDED, reason=detail)
    return commenter


def commenter_ban(
    *, user: AbstractBaseUser, moderator: AbstractBaseUser, reason: str = "", reject_comments: bool = False
) -> int:
    """Ban from commenting for good; optionally reject everything they have published or have waiting.

    Returns how many comments were rejected.
    """
    with transaction.atomic():
        commenter, _ = _lock_commenter(user)
        commenter.is_banned = True
        commenter.moderation_note = reason
        commenter.save(update_fields=["is_banned", "moderation_note", "updated_at"])
        _log(Action.BANNED, subject=user, moderator=moderator, reason_code=ReasonCode.BANNED, reason=reason)
        rejected = 0
        if reject_comments:
            live = Comment.objects.filter(author=user, status__in=[Status.VISIBLE, Status.PENDING]).order_by("pk")
            for comment in live.select_for_update():
                _set_status(
                    comment, Status.REJECTED, reason_code=ReasonCode.BANNED, note="commenter banned", moderated=True
                )
                _resolve_reports(comment, Report.Resolution.UPHELD)
                _log(
                    Action.REJECTED,
                    story_id=comment.story_id,
                    subject=user,
                    comment=comment,
                    moderator=moderator,
                    reason_code=ReasonCode.BANNED,
                    reason="commenter banned",
                )
                rejected += 1
    return rejected


def commenter_set_premoderation(
    *, user: AbstractBaseUser, moderator: AbstractBaseUser, enabled: bool, reason: str = ""
) -> Commenter:
    """Hold every comment of this reader for review, or stop doing so."""
    with transaction.atomic():
        commenter, _ = _lock_commenter(user)
        commenter.always_premoderate = enabled
        commenter.save(update_fields=["always_premoderate", "updated_at"])
        action = Action.PREMODERATED if enabled else Action.UNPREMODERATED
        _log(action, subject=user, moderator=moderator, reason_code=ReasonCode.PREMODERATED_USER, reason=reason)
    return commenter


def commenter_reinstate(*, user: AbstractBaseUser, moderator: AbstractBaseUser, reason: str = "") -> Commenter:
    """Lift a ban or a suspension."""
    with transaction.atomic():
        commenter, _ = _lock_commenter(user)
        commenter.is_banned = False
        commenter.suspended_until = None
        commenter.moderation_note = reason
        commenter.save(update_fields=["is_banned", "suspended_until", "moderation_note", "updated_at"])
        _log(Action.REINSTATED, subject=user, moderator=moderator, reason=reason)
    return commenter


def commenter_set_reply_notifications(*, user: AbstractBaseUser, enabled: bool) -> Commenter:
    commenter, _ = Commenter.objects.get_or_create(user=user)
    if commenter.notify_replies != enabled:
        commenter.notify_replies = enabled
        commenter.save(update_fields=["notify_replies", "updated_at"])
    return commenter


# --- Privacy ---------------------------------------------------------------------------------


def author_comments_erase(*, user: AbstractBaseUser) -> int:
    """Replace every comment of this reader by a "[deleted]" tombstone that keeps the threads' shape.

    Their text, fingerprints and the link to the account go; counts drop by what was published.
    Returns how many comments were erased.
    """
    with transaction.atomic():
        comments = list(
            Comment.objects.select_for_update()
            .filter(author=user)
            .order_by("pk")
            .values_list("pk", "status", "story_id", "root_id")
        )
        if not comments:
            return 0
        published = [(story_id, root_id) for _, status, story_id, root_id in comments if status == Status.VISIBLE]
        roots = Counter(root_id for _, root_id in published if root_id is not None)
        for root_id in sorted(roots):
            Comment.objects.filter(pk=root_id).update(thread_reply_count=F("thread_reply_count") - roots[root_id])
        stories = Counter(story_id for story_id, _ in published)
        for story_id in sorted(stories):
            Story.objects.filter(pk=story_id).update(comment_count=F("comment_count") - stories[story_id])
        Comment.objects.filter(pk__in=[pk for pk, *_ in comments]).update(
            author=None,
            status=Status.DELETED,
            body_source="",
            body_html="",
            body_hash="",
            author_ip_hash="",
            reason_code=ReasonCode.ACCOUNT_DELETED,
            moderation_note="",
        )
        _log(
            Action.ACCOUNT_DELETED,
            subject=user,
            reason_code=ReasonCode.ACCOUNT_DELETED,
            reason=f"{len(comments)} comments replaced by [deleted]",
        )
        transaction.on_commit(pagecache.bump_generation)
    return len(comments)


def reader_recommendations_erase(*, user: AbstractBaseUser) -> int:
    """Take back every recommendation of this reader (their account is going), each comment's count dropping
    with it. Returns how many there were."""
    with transaction.atomic():
        _lock_commenter(user)
        taken_back = list(
            Recommendation.objects.select_for_update()
            .filter(reader=user)
            .order_by("comment_id")
            .values_list("pk", "comment_id")
        )
        if not taken_back:
            return 0
        # A reader recommends a comment once, so each of these comments loses one. Locked in order first,
        # as every service that locks several comments does.
        comments = Comment.objects.filter(pk__in=[comment_id for _, comment_id in taken_back])
        list(comments.select_for_update().order_by("pk").values_list("pk"))
        comments.update(recommendation_count=F("recommendation_count") - 1)
        Recommendation.objects.filter(pk__in=[pk for pk, _ in taken_back]).delete()
        transaction.on_commit(pagecache.bump_generation)
    return len(taken_back)


def account_delete(*, user: AbstractBaseUser) -> int:
    """Delete a reader's account at their request; their comments stay as "[deleted]" tombstones.

    Returns how many comments were erased.
    """
    with transaction.atomic():
        erased = author_comments_erase(user=user)
        user.delete()
    return erased


# --- Internals -------------------------------------------------------------------------------


def _checked_text(body: str) -> str:
    text = (body or "").replace("\r\n", "\n").strip()
    if not text:
        raise InvalidComment("Write something before posting.")
    limit = settings.COMMENTS_MAX_LENGTH
    if len(text) > limit:
        raise InvalidComment(f"Comments can be at most {limit:,} characters long; this one has {len(text):,}.")
    return text


def _lock_commenter(user: AbstractBaseUser, *, count_published_up_to: int = 0) -> tuple[Commenter, bool]:
    """The reader's commenter row, locked for the transaction (serialising one reader's posts), and
    whether they have a verified email address, from one query.

    With `count_published_up_to`, the row's `published_comments` also says how many of the reader's
    comments are published, counted up to that number (what the new-commenter rules ask); otherwise, and
    when the row had to be made, it is None."""
    params = [Status.VISIBLE, count_published_up_to, user.pk]
    if connection.vendor == "postgresql":
        # Read as it comes: a RawQuerySet costs a post more CPU than the statement, and PostgreSQL's values
        # need no converting (elsewhere the RawQuerySet converts them, SQLite's dates among them).
        with planned_once() as cursor:
            cursor.execute(_LOCK_COMMENTER, params)
            row = cursor.fetchone()
        found = None
        if row is not None:
            found = Commenter.from_db(connection.alias, _COMMENTER_COLUMNS, row[:-2])
            found.email_verified, found.published_comments = row[-2:]
    else:
        found = next(iter(Commenter.objects.raw(_LOCK_COMMENTER, params)), None)
    if found is None:
        commenter, _ = Commenter.objects.select_for_update().get_or_create(user=user)
        commenter.published_comments = None
        return commenter, EmailAddress.objects.filter(user=user, verified=True).exists()
    if not count_published_up_to:
        found.published_comments = None
    return found, bool(found.email_verified)


_COMMENTER_COLUMNS = tuple(field.attname for field in Commenter._meta.concrete_fields)


def _lock_commenter_sql() -> str:
    """The statement `_lock_commenter` runs, written out: through the ORM, building its two subqueries cost
    a post more CPU than everything else the lock does. Names come from the models, values are bound."""
    name = connection.ops.quote_name
    emails, comments = name(EmailAddress._meta.db_table), name(Comment._meta.db_table)
    # SQLite has no row locks: a write there takes the whole database, at BEGIN with our settings.
    lock = " FOR UPDATE OF c" if connection.features.has_select_for_update_of else ""
    columns = ", ".join(f"c.{name(field.column)}" for field in Commenter._meta.concrete_fields)
    return (
        f"SELECT {columns},"  # noqa: S608
        f" EXISTS (SELECT 1 FROM {emails} e WHERE e.user_id = c.user_id AND e.verified) AS email_verified,"
        f" (SELECT COUNT(*) FROM (SELECT 1 FROM {comments} p WHERE p.author_id = c.user_id AND p.status = %s"
        " LIMIT %s) AS counted) AS published_comments"
        f" FROM {name(Commenter._meta.db_table)} c WHERE c.user_id = %s{lock}"
    )


_LOCK_COMMENTER = _lock_commenter_sql()


def _by_key(key: uuid.UUID) -> Comment | None:
    return Comment.objects.filter(idempotency_key=key).first()


def _lock(comment: Comment) -> Comment:
    return Comment.objects.select_for_update(of=("self",)).select_related("story", "author").get(pk=comment.pk)


def _replayed(existing: Comment, author: AbstractBaseUser) -> Comment:
    if existing.author_id != author.pk:
        raise InvalidComment("This form was already used. Reload the page and try again.")
    if existing.status == Status.REJECTED:
        raise CommentRejected(moderation.REJECTED_MESSAGE)
    return existing


def _insert(
    submission: moderation.Submission,
    decision: moderation.Decision,
    *,
    parent: Comment | None,
    key: uuid.UUID,
    ip_address: str,
    now: datetime,
) -> Comment:
    status = {
        moderation.Verdict.APPROVE: Status.VISIBLE,
        moderation.Verdict.HOLD: Status.PENDING,
        moderation.Verdict.REJECT: Status.REJECTED,
    }[decision.verdict]
    comment = Comment(
        story=submission.story,
        author_id=submission.author_id,
        parent=parent,
        root_id=(parent.root_id or parent.pk) if parent else None,
        depth=parent.depth + 1 if parent else 0,
        body_source=submission.text,
        body_html=submission.html,
        body_hash=submission.fingerprint,
        status=status,
        reason_code="" if status == Status.VISIBLE else decision.reason_code,
        moderation_note="" if status == Status.VISIBLE else decision.reason,
        idempotency_key=key,
        author_ip_hash=_ip_hash(ip_address),
        created_at=now,
    )
    action = _STATUS_ACTIONS[status]
    entry = _log_entry(action, decision=decision, story=submission.story, subject_id=submission.author_id)
    comment_count = _write_new(comment, entry)
    if status == Status.VISIBLE:
        submission.story.comment_count = comment_count
        _on_commit_discussion_changed(comment)
        if parent is not None and parent.author_id and parent.author_id != submission.author_id:
            transaction.on_commit(queue_reply_mail)
    return comment


def _write_new(comment: Comment, entry: ModerationLog) -> int | None:
    """Write a new comment and the log entry of the decision on it; a published one is also counted in its
    thread and story, whose new `comment_count` is returned (None when it is not published).

    On PostgreSQL this is one statement (`_new_comment_sql`) where it was three or four, and it costs the
    worker less than the ORM's inserts. Elsewhere it is the ORM's save of each, then the counts. Either way
    the models' post_save receivers hear of both rows, as they would of a save."""
    counted = comment.status == Status.VISIBLE
    if connection.vendor != "postgresql":
        comment.save(force_insert=True)
        entry.comment = comment
        entry.save(force_insert=True)
        return _shift_counts(comment, +1) if counted else None
    params = _values_to_insert(comment, _COMMENT_INSERTED) + _values_to_insert(entry, _ENTRY_INSERTED)
    if counted:
        params += [comment.root_id, comment.story_id] if comment.root_id else [comment.story_id]
    with planned_once() as cursor:
        cursor.execute(_new_comment_sql(counted=counted, reply=bool(comment.root_id)), params)
        comment.pk, entry.pk, comment_count = cursor.fetchone()
    entry.comment = comment
    alias = connection.alias
    for instance in (comment, entry):
        instance._state.adding, instance._state.db = False, alias
        post_save.send(type(instance), instance=instance, created=True, update_fields=None, raw=False, using=alias)
    return comment_count


# Every column of a new row but its id, which the database numbers; the log entry's comment is the new comment.
_COMMENT_INSERTED = tuple(field for field in Comment._meta.concrete_fields if not field.primary_key)
_ENTRY_INSERTED = tuple(
    field for field in ModerationLog._meta.concrete_fields if not field.primary_key and field.name != "comment"
)


def _values_to_insert(instance: Model, fields: tuple[Field, ...]) -> list:
    return [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]


@functools.cache
def _new_comment_sql(*, counted: bool, reply: bool) -> str:
    """`_write_new`'s statement on PostgreSQL, written out from the models (names quoted, values bound):
    the comment's INSERT, its log entry's INSERT with the comment's new id and, for a published comment, the
    counts' UPDATEs; it returns the comment's id, the entry's id and the story's new count (or NULL)."""
    name = connection.ops.quote_name
    comments, entries = name(Comment._meta.db_table), name(ModerationLog._meta.db_table)
    entry_comment = name(ModerationLog._meta.get_field("comment").column)
    parts = [
        f"WITH posted AS (INSERT INTO {comments} ({', '.join(name(f.column) for f in _COMMENT_INSERTED)})",
        f" VALUES ({', '.join(['%s'] * len(_COMMENT_INSERTED))}) RETURNING id),",
        f" logged AS (INSERT INTO {entries} ({', '.join(name(f.column) for f in _ENTRY_INSERTED)}, {entry_comment})",
        f" VALUES ({', '.join(['%s'] * len(_ENTRY_INSERTED))}, (SELECT id FROM posted)) RETURNING id)",  # noqa: S608
    ]
    returned = "(SELECT id FROM posted), (SELECT id FROM logged)"
    if not counted:
        return "".join([*parts, f" SELECT {returned}, NULL"])
    if reply:
        # The sub-statements of one statement run in no set order, but the story's UPDATE has a condition on the
        # thread's result, so the thread's runs first: the locks come in their one order (thread root, then story).
        parts.append(f", thread AS ({_SHIFT_THREAD_REPLY_COUNT.replace(' + %s', ' + 1')} RETURNING id)")
    story_count = _shift_sql(Story, "comment_count").replace(" + %s", " + 1")
    parts.append(f" {story_count}{' AND (SELECT COUNT(*) FROM thread) >= 0' if reply else ''}")  # noqa: S608
    return "".join([*parts, f" RETURNING {returned}, {name('comment_count')}"])


def _set_status(comment: Comment, status: str, *, reason_code: str, note: str, moderated: bool = False) -> None:
    """Move a locked comment to `status`, keeping the published counts in step."""
    delta = int(status == Status.VISIBLE) - int(comment.status == Status.VISIBLE)
    comment.status = status
    comment.reason_code = reason_code
    comment.moderation_note = note[:500]
    fields = ["status", "reason_code", "moderation_note"]
    if status == Status.DELETED:
        comment.body_source = comment.body_html = comment.body_hash = ""
        fields += ["body_source", "body_html", "body_hash"]
    if moderated:
        comment.moderated_at = timezone.now()
        fields.append("moderated_at")
    comment.save(update_fields=fields)
    if delta:
        _shift_counts(comment, delta)
    _on_commit_discussion_changed(comment)


def _on_commit_discussion_changed(comment: Comment) -> None:
    """Once the change is committed, the cached pages of the comment's story show it; other pages stay."""
    slug = comment.story.slug
    transaction.on_commit(lambda: pagecache.story_discussion_changed(slug))


def _shift_counts(comment: Comment, delta: int) -> int:
    """Add `delta` to the published counts the comment is in (its thread's, then its story's); returns the
    story's new `comment_count`, which the answer to a post shows."""
    with connection.cursor() as cursor:
        if comment.root_id:
            cursor.execute(_SHIFT_THREAD_REPLY_COUNT, [delta, comment.root_id])
        cursor.execute(_SHIFT_STORY_COUNT, [delta, comment.story_id])
        return cursor.fetchone()[0]


def _shift_sql(model: type[Model], field: str, *, returning: bool = False) -> str:
    """UPDATE … SET field = field + %s WHERE pk = %s, written out: through the ORM, update() costs a post more
    CPU to build than the database spends on it, and cannot return what it wrote. Names come from the model,
    values are bound."""
    name = connection.ops.quote_name
    column = name(model._meta.get_field(field).column)
    statement = f"UPDATE {name(model._meta.db_table)} SET {column} = {column} + %s"  # noqa: S608
    return statement + f" WHERE {name(model._meta.pk.column)} = %s" + (f" RETURNING {column}" if returning else "")


_SHIFT_THREAD_REPLY_COUNT = _shift_sql(Comment, "thread_reply_count")
_SHIFT_STORY_COUNT = _shift_sql(Story, "comment_count", returning=True)


def _resolve_reports(comment: Comment, resolution: str) -> None:
    if comment.open_report_count:
        Report.objects.filter(comment=comment, resolution=Report.Resolution.OPEN).update(
            resolution=resolution, resolved_at=timezone.now()
        )
        comment.open_report_count = 0
        comment.save(update_fields=["open_report_count"])


def _log(action: str, **details) -> ModerationLog:
    entry = _log_entry(action, **details)
    entry.save(force_insert=True)
    return entry


def _log_entry(
    action: str,
    *,
    decision: moderation.Decision | None = None,
    story: Story | None = None,
    story_id: int | None = None,
    subject: AbstractBaseUser | None = None,
    subject_id: int | None = None,
    comment: Comment | None = None,
    moderator: AbstractBaseUser | None = None,
    reporter: AbstractBaseUser | None = None,
    reason_code: str = "",
    reason: str = "",
) -> ModerationLog:
    """A new entry of the moderation log, not yet saved."""
    rule = decision.rule if decision else None
    return ModerationLog(
        action=action,
        comment=comment,
        story_id=story.pk if story is not None else story_id,
        subject_id=subject.pk if subject is not None else subject_id,
        moderator=moderator,
        reporter=reporter,
        rule_id=rule.id if rule else None,
        rule_name=rule.name if rule else "",
        reason_code=decision.reason_code if decision else reason_code,
        reason=(decision.reason if decision else reason)[:500],
    )


def _refusal(decision: moderation.Decision) -> Exception:
    if decision.reason_code == ReasonCode.RATE_LIMIT:
        return RateLimited(decision.message, code=decision.reason_code, retry_after=decision.retry_after)
    if decision.reason_code == ReasonCode.DUPLICATE:
        return DuplicateComment(decision.message, code=decision.reason_code)
    return NotAllowed(decision.message, code=decision.reason_code)


def _ip_hash(ip_address: str) -> str:
    if not ip_address:
        return ""
    key = hashlib.sha256(settings.COMMENTS_IP_HASH_SALT.encode()).digest()
    return hashlib.blake2b(ip_address.encode(), key=key, digest_size=16).hexdigest()


# When this process's last batch of reply mail was queued (time.monotonic()); none yet.
_reply_batch_queued_at: float | None = None


def queue_reply_mail() -> None:
    """A reply was committed: see that a batch mails it (`notifications.REPLY_BATCH_SECONDS`). Queueing a
    task cost a reply more CPU than anything else it did after its commit; now one reply in a batch pays it."""
    global _reply_batch_queued_at
    now = time.monotonic()
    if _reply_batch_queued_at is not None and now - _reply_batch_queued_at < notifications.REPLY_BATCH_SECONDS:
        return
    try:
        tasks.send_waiting_reply_notifications.apply_async(countdown=notifications.REPLY_BATCH_SECONDS + 1)
    except OperationalError:
        # The next reply tries again; replies left waiting meanwhile are the sweep's.
        logger.exception("Could not queue a batch of reply mail")
        return
    _reply_batch_queued_at = now


def forget_queued_reply_mail() -> None:
    """As if this process had queued no batch of reply mail yet: its next reply queues one."""
    global _reply_batch_queued_at
    _reply_batch_queued_at = None


def commenter_mark_replies_seen(*, user, now: datetime | None = None) -> None:
    """The reader has opened "Your comments": the header counts only replies newer than now as new."""
    Commenter.objects.filter(user=user).update(replies_seen_at=now or timezone.now())
    cache.delete(selectors.unseen_replies_cache_key(user.pk))
    pagecache.reader_did_something(user.pk)  # the header's count, kept with their parts, goes at once
