"""Readers' comments on stories, their reports, the commenters' standing, the moderation rules and log."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from disarm import skeleton_key
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Case, Exists, OuterRef, Q, Value, When
from django.urls import reverse
from django.utils import timezone


class ReasonCode(models.TextChoices):
    """Why a comment or a commenter is where they are: one vocabulary for rules, moderators and the log."""

    SPAM = "spam", "Spam"
    ABUSE = "abuse", "Abuse or harassment"
    OFF_TOPIC = "off_topic", "Off-topic"
    OTHER = "other", "Other"
    BANNED_WORDS = "banned_words", "Banned words"
    SUSPECT_WORDS = "suspect_words", "Suspect words"
    LINKS = "links", "Too many links"
    NEW_ACCOUNT = "new_account", "New commenter"
    DUPLICATE = "duplicate", "Duplicate text"
    RATE_LIMIT = "rate_limit", "Rate limit"
    REPORTS = "reports", "Reported by readers"
    PREMODERATED_STORY = "premoderated_story", "Story is pre-moderated"
    PREMODERATED_SITE = "premoderated_site", "Site is pre-moderated"
    PREMODERATED_USER = "premoderated_user", "Commenter is always pre-moderated"
    CLOSED = "closed", "Comments closed"
    SUSPENDED = "suspended", "Commenter suspended"
    BANNED = "banned", "Commenter banned"
    NOT_VERIFIED = "not_verified", "Email not verified"
    PASSED = "passed", "Passed every rule"
    AUTHOR = "author", "By the author"
    ACCOUNT_DELETED = "account_deleted", "Account deleted"


# What a moderator may give as the reason for rejecting or removing a comment, and a reader for reporting one.
MODERATOR_REASONS = [ReasonCode.SPAM, ReasonCode.ABUSE, ReasonCode.OFF_TOPIC, ReasonCode.OTHER]


class CommentQuerySet(models.QuerySet):
    def visible(self) -> "CommentQuerySet":
        """What every reader sees."""
        return self.filter(status=Comment.Status.VISIBLE)

    def by(self, user) -> "CommentQuerySet":
        return self.filter(author=user)

    def top_level(self) -> "CommentQuerySet":
        return self.filter(parent__isnull=True)

    def listed_for(self, viewer_id: int | None) -> "CommentQuerySet":
        """Top-level comments a reader gets an entry for: published ones, their own awaiting moderation,
        and tombstones of withdrawn ones whose published replies keep them in place."""
        listed = Q(status=Comment.Status.VISIBLE) | Q(thread_reply_count__gt=0)
        if viewer_id is not None:
            listed |= Q(author_id=viewer_id, status=Comment.Status.PENDING)
        return self.filter(listed)

    def in_threads(self, root_ids) -> "CommentQuerySet":
        """Whole threads: the given top-level comments and everything under them."""
        return self.filter(Q(pk__in=root_ids) | Q(root_id__in=root_ids))

    def thread_values(self) -> "CommentQuerySet":
        """What rendering a thread needs, as plain rows (authors' names and badges joined in): a thread of
        hundreds of comments would spend more on building model instances than on everything else."""
        return self.annotate(author_badge=_author_badge()).values_list(*ThreadComment.FIELDS)

    def picks(self) -> "CommentQuerySet":
        """Published editors' picks, the latest pick first."""
        return self.visible().filter(is_picked=True).order_by("-picked_at", "-pk")


# The group moderators belong to (the admin gives them staff status as well), and the permission that
# lets them act on comments: take them down, approve them, choose editors' picks.
MODERATORS_GROUP = "Moderators"
MODERATE_PERMISSION = "comments.change_comment"


class Badge(models.TextChoices):
    """What a comment's author is on this site, shown beside their name."""

    NONE = "", ""
    MODERATOR = "moderator", "Moderator"
    STAFF = "staff", "Staff"


def _author_badge() -> Case:
    """The author's badge as part of the thread's one query: staff in the Moderators group are moderators,
    other staff are staff, everyone else has none."""
    in_moderators = Exists(Group.objects.filter(name=MODERATORS_GROUP, user=OuterRef("author_id")))
    return Case(
        When(
            Q(author__is_staff=True) | Q(author__is_superuser=True),
            then=Case(When(in_moderators, then=Value(Badge.MODERATOR)), default=Value(Badge.STAFF)),
        ),
        default=Value(Badge.NONE),
        output_field=models.CharField(),
    )


def author_badge(user) -> str:
    """`_author_badge()` for one account in hand; asks the database only about staff."""
    if user is None or not (user.is_staff or user.is_superuser):
        return Badge.NONE
    return Badge.MODERATOR if user.groups.filter(name=MODERATORS_GROUP).exists() else Badge.STAFF


class CommentFacts:
    """What a comment can say about itself from its fields; shared by the model and thread rows."""

    __slots__ = ()

    def get_absolute_url(self) -> str:
        return reverse("comments:comment", kwargs={"pk": self.pk}) + f"#comment-{self.pk}"

    @property
    def is_visible(self) -> bool:
        return self.status == Comment.Status.VISIBLE

    def tombstone_text(self) -> str:
        if self.status == Comment.Status.DELETED:
            return "[deleted]"
        if self.status == Comment.Status.PENDING:
            return "[hidden pending review]"
        return "[removed]"

    def editable_until(self) -> datetime:
        return self.created_at + timezone.timedelta(seconds=settings.COMMENTS_EDIT_WINDOW_SECONDS)

    def can_be_edited_by(self, user_id: int | None, *, now: datetime | None = None) -> bool:
        return (
            user_id is not None
            and self.author_id == user_id
            and self.status in (Comment.Status.VISIBLE, Comment.Status.PENDING)
            and (now or timezone.now()) < self.editable_until()
        )


class Comment(CommentFacts, models.Model):
    """A reader's comment, stored both as the text they wrote and as sanitised HTML rendered once."""

    class Status(models.TextChoices):
        VISIBLE = "visible", "Published"
        PENDING = "pending", "Awaiting moderation"
        REJECTED = "rejected", "Rejected"
        REMOVED = "removed", "Removed by a moderator"
        DELETED = "deleted", "Deleted by its author"

    story = models.ForeignKey("stories.Story", on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="comments")
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="replies")
    root = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="thread",
        help_text="The top-level comment of this reply's thread; empty for top-level comments.",
    )
    depth = models.PositiveSmallIntegerField(default=0, help_text="0 for top-level comments, 1 for their replies…")
    body_source = models.TextField("text as written", blank=True)
    body_html = models.TextField("rendered text", blank=True)
    body_hash = models.CharField(max_length=64, blank=True, help_text="Fingerprint of the text, to spot duplicates.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.VISIBLE)
    reason_code = models.CharField("reason", max_length=20, choices=ReasonCode.choices, blank=True)
    moderation_note = models.CharField(
        "why", max_length=500, blank=True, help_text="What put the comment where it is, in words."
    )
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    author_ip_hash = models.CharField(
        "address fingerprint", max_length=32, blank=True, help_text="Keyed hash of the address; never the address."
    )
    thread_reply_count = models.PositiveIntegerField(
        default=0, help_text="Published replies in this top-level comment's thread."
    )
    open_report_count = models.PositiveIntegerField(default=0, help_text="Readers' reports not yet reviewed.")
    recommendation_count = models.PositiveIntegerField(
        "recommendations", default=0, help_text="Readers who recommend this comment."
    )
    is_picked = models.BooleanField("editors' pick", default=False)
    picked_at = models.DateTimeField(null=True, blank=True, help_text="When a moderator made it an editors' pick.")
    created_at = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(null=True, blank=True)
    moderated_at = models.DateTimeField(null=True, blank=True)
    reply_notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the parent's author was emailed about this reply."
    )

    objects = CommentQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(
                fields=["story", "created_at"], condition=Q(parent__isnull=True), name="comment_top_level_idx"
            ),
            models.Index(fields=["author", "created_at"], name="comment_author_recent_idx"),
            models.Index(fields=["status", "created_at"], name="comment_queue_idx"),
            models.Index(fields=["story", "picked_at"], condition=Q(is_picked=True), name="comment_pick_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["visible", "pending", "rejected", "removed", "deleted"]),
                name="comment_status_known",
            ),
            models.CheckConstraint(
                condition=Q(parent__isnull=True, root__isnull=True, depth=0)
                | Q(parent__isnull=False, root__isnull=False, depth__gt=0),
                name="comment_reply_has_root",
            ),
            models.CheckConstraint(
                condition=~Q(status="deleted") | Q(body_source="", body_html="", body_hash=""),
                name="comment_deleted_keeps_no_text",
            ),
            models.CheckConstraint(
                condition=Q(is_picked=True, picked_at__isnull=False) | Q(is_picked=False, picked_at__isnull=True),
                name="comment_pick_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"Comment {self.pk} on story {self.story_id}"


@dataclass(slots=True)
class ThreadComment(CommentFacts):
    """A comment as a thread shows it, read as a plain row by `CommentQuerySet.thread_values()`."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "pk",
        "story_id",
        "parent_id",
        "root_id",
        "depth",
        "status",
        "body_html",
        "created_at",
        "edited_at",
        "thread_reply_count",
        "author_id",
        "author__username",
        "recommendation_count",
        "is_picked",
        "author_badge",
    )

    pk: int
    story_id: int
    parent_id: int | None
    root_id: int | None
    depth: int
    status: str
    body_html: str
    created_at: datetime
    edited_at: datetime | None
    thread_reply_count: int
    author_id: int | None
    author_name: str | None
    recommendation_count: int
    is_picked: bool
    author_badge: str

    @classmethod
    def from_comment(cls, comment: Comment) -> "ThreadComment":
        return cls(
            comment.pk,
            comment.story_id,
            comment.parent_id,
            comment.root_id,
            comment.depth,
            comment.status,
            comment.body_html,
            comment.created_at,
            comment.edited_at,
            comment.thread_reply_count,
            comment.author_id,
            comment.author.username if comment.author_id else None,
            comment.recommendation_count,
            comment.is_picked,
            author_badge(comment.author) if comment.author_id else Badge.NONE,
        )


class Report(models.Model):
    """One reader's report of a comment; a reader reports a comment once."""

    class Reason(models.TextChoices):
        SPAM = ReasonCode.SPAM.value, "Spam"
        ABUSE = ReasonCode.ABUSE.value, "Abuse or harassment"
        OFF_TOPIC = ReasonCode.OFF_TOPIC.value, "Off-topic"
        OTHER = ReasonCode.OTHER.value, "Something else"

    class Resolution(models.TextChoices):
        OPEN = "", "Not reviewed yet"
        UPHELD = "upheld", "Upheld: the comment was taken down"
        DISMISSED = "dismissed", "Dismissed: the comment was approved"

    comment = models.ForeignKey(Comment, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    resolution = models.CharField(max_length=10, choices=Resolution.choices, blank=True, default="")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["comment", "reporter"], name="report_once_per_reader"),
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} report on comment {self.comment_id}"


class Recommendation(models.Model):
    """One reader's recommendation of a comment; a reader recommends a comment once. The comment keeps the
    count (`recommendation_count`) so a thread needs no join to show it."""

    # Indexed by the two-column unique constraint (comment first) and index (reader first) below.
    comment = models.ForeignKey(Comment, on_delete=models.CASCADE, related_name="recommendations", db_index=False)
    reader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recommendations", db_index=False
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["reader", "comment"], name="recommendation_reader_idx")]
        constraints = [
            models.UniqueConstraint(fields=["comment", "reader"], name="recommend_once_per_reader"),
        ]

    def __str__(self) -> str:
        return f"Recommendation of comment {self.comment_id}"


def public_name_skeleton(name: str) -> str:
    """What a public name looks like, after Unicode's confusable mapping (UTS #39 skeleton, case-folded, digits
    folded with the letters they resemble): "poster01" and a "p\u043ester01" (a Cyrillic o) share one."""
    return skeleton_key(name, digit_policy="tr39")


class CommenterQuerySet(models.QuerySet):
    def named_like(self, name: str) -> "CommenterQuerySet":
        """Readers whose public name looks like this one (one indexed lookup on the stored skeleton)."""
        return self.filter(name_skeleton=public_name_skeleton(name))


class Commenter(models.Model):
    """A reader's standing in the comments: suspension, ban, pre-moderation, and their mail preference."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True)
    # Kept in step with the user's name by comments.signals; not unique, because names that already looked
    # alike before the rule existed stay valid.
    name_skeleton = models.CharField(max_length=600, blank=True, db_index=True, editable=False)
    suspended_until = models.DateTimeField(null=True, blank=True)
    is_banned = models.BooleanField("banned", default=False)
    always_premoderate = models.BooleanField("always pre-moderate", default=False)
    notify_replies = models.BooleanField("email me replies", default=True)
    replies_seen_at = models.DateTimeField(
        "replies seen",
        default=timezone.now,
        help_text="When the reader last opened “Your comments”; replies since then count as new in the header.",
    )
    moderation_note = models.CharField("why", max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CommenterQuerySet.as_manager()

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return self.user.username

    def is_suspended(self, *, now: datetime | None = None) -> bool:
        return self.suspended_until is not None and self.suspended_until > (now or timezone.now())

    def refusal(self, *, now: datetime | None = None) -> tuple[str, str] | None:
        """(reason code, message) when this commenter may not post, edit or report; None when they may."""
        if self.is_banned:
            return ReasonCode.BANNED, "Your account can no longer comment."
        if self.is_suspended(now=now):
            until = timezone.localtime(self.suspended_until).strftime("%Y-%m-%d %H:%M %Z")
            return ReasonCode.SUSPENDED, f"Your account is suspended from commenting until {until}."
        return None


class ModerationRule(models.Model):
    """One automatic moderation rule, editable in the admin; the pipeline in moderation.py applies them."""

    class Kind(models.TextChoices):
        BANNED_WORDS = "banned_words", "Banned words: reject the comment"
        SUSPECT_WORDS = "suspect_words", "Suspect words: hold for review"
        LINKS = "links", "More than N links: hold for review"
        NEW_ACCOUNT = "new_account", "A commenter's first N comments: hold for review"
        DUPLICATE = "duplicate", "Same text again within the window: refuse"
        RATE_LIMIT = "rate_limit", "More than N comments within the window: refuse"
        REPORTS = "reports", "Reported by N readers: hide for review"
        HOLD_ALL = "hold_all", "Site default: pre-moderate every comment"
        CLOSE_ALL = "close_all", "Site default: comments closed everywhere"
        CLOSE_AFTER = "close_after", "Close comments N days after publication"

    NEEDS_WORDS = {Kind.BANNED_WORDS, Kind.SUSPECT_WORDS}
    NEEDS_LIMIT = {Kind.LINKS, Kind.NEW_ACCOUNT, Kind.RATE_LIMIT, Kind.REPORTS, Kind.CLOSE_AFTER}
    NEEDS_WINDOW = {Kind.DUPLICATE, Kind.RATE_LIMIT}

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    is_active = models.BooleanField("active", default=True)
    words = models.TextField(
        blank=True, help_text="Word lists: one word or phrase a line, matched as whole words, ignoring case."
    )
    limit = models.PositiveIntegerField(
        "N",
        null=True,
        blank=True,
        help_text="Links allowed; comments held for a new commenter; comments allowed in the window; "
        "readers' reports that hide a comment; days after publication before comments close.",
    )
    window_seconds = models.PositiveIntegerField(
        "window (seconds)", null=True, blank=True, help_text="For rate limits and duplicates."
    )
    new_accounts_only = models.BooleanField(
        default=False,
        help_text="Rate limits: apply only to accounts younger than COMMENTS_NEW_ACCOUNT_DAYS days.",
    )
    message = models.CharField(
        max_length=300,
        blank=True,
        help_text="What the author is told when this rule refuses, rejects or holds a comment. Empty: a default.",
    )
    # Only closing by age is scoped: a rule for a source or section, or (with neither) for every story.
    source = models.ForeignKey(
        "stories.Source",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text="Closing after N days: only stories from this source. Empty: any source.",
    )
    section = models.ForeignKey(
        "stories.Section",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text="Closing after N days: only stories in this section. Empty: any section.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    kind__in=[
                        "banned_words",
                        "suspect_words",
                        "links",
                        "new_account",
                        "duplicate",
                        "rate_limit",
                        "reports",
                        "hold_all",
                        "close_all",
                        "close_after",
                    ]
                ),
                name="moderation_rule_kind_known",
            ),
            models.CheckConstraint(
                condition=Q(kind="close_after") | Q(source__isnull=True, section__isnull=True),
                name="moderation_rule_scoped_only_when_closing",
            ),
            models.CheckConstraint(
                condition=~Q(kind="close_after") | Q(limit__lte=36_500),
                name="moderation_rule_closes_within_a_century",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.kind in self.NEEDS_WORDS and not self.word_list():
            errors["words"] = "List at least one word or phrase."
        if self.kind in self.NEEDS_LIMIT and self.limit is None:
            errors["limit"] = "This kind of rule needs N."
        if self.kind in self.NEEDS_WINDOW and not self.window_seconds:
            errors["window_seconds"] = "This kind of rule needs a window."
        if self.kind == self.Kind.REPORTS and self.limit == 0:
            errors["limit"] = "At least one report must be needed."
        if self.kind == self.Kind.CLOSE_AFTER and self.limit is not None and self.limit > 36_500:
            errors["limit"] = "Close comments within 36,500 days (a century) of publication at most."
        if self.kind != self.Kind.CLOSE_AFTER:
            if self.source_id:
                errors["source"] = "Only a rule closing comments after N days applies to one source."
            if self.section_id:
                errors["section"] = "Only a rule closing comments after N days applies to one section."
        if errors:
            raise ValidationError(errors)

    def word_list(self) -> list[str]:
        return [line.strip() for line in self.words.splitlines() if line.strip()]


class ModerationLogQuerySet(models.QuerySet):
    def automatic(self) -> "ModerationLogQuerySet":
        return self.filter(moderator__isnull=True)


class ModerationLog(models.Model):
    """One moderation decision, automatic or human: who or which rule, what, when and why. Never edited."""

    class Action(models.TextChoices):
        APPROVED = "approved", "Approved"
        HELD = "held", "Held for review"
        REJECTED = "rejected", "Rejected"
        REFUSED = "refused", "Refused"
        REMOVED = "removed", "Removed"
        DELETED = "deleted", "Deleted by author"
        EDITED = "edited", "Edited"
        REPORTED = "reported", "Reported"
        SUSPENDED = "suspended", "Commenter suspended"
        BANNED = "banned", "Commenter banned"
        PREMODERATED = "premoderated", "Commenter pre-moderated"
        UNPREMODERATED = "unpremoderated", "Commenter no longer pre-moderated"
        REINSTATED = "reinstated", "Commenter reinstated"
        ACCOUNT_DELETED = "account_deleted", "Account deleted"
        PICKED = "picked", "Made an editors' pick"
        UNPICKED = "unpicked", "No longer an editors' pick"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    comment = models.ForeignKey(
        Comment, on_delete=models.SET_NULL, null=True, blank=True, related_name="moderation_log"
    )
    story = models.ForeignKey("stories.Story", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="moderation_history",
        help_text="The commenter the decision is about.",
    )
    moderator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="moderation_decisions",
        help_text="Empty for automatic decisions.",
    )
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The reader who reported the comment, for reports.",
    )
    rule = models.ForeignKey(ModerationRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    rule_name = models.CharField("rule", max_length=100, blank=True, help_text="The rule's name at the time.")
    reason_code = models.CharField("reason", max_length=20, choices=ReasonCode.choices, blank=True)
    reason = models.CharField("details", max_length=500, blank=True)

    objects = ModerationLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "moderation log entry"
        verbose_name_plural = "moderation log entries"

    def __str__(self) -> str:
        return f"{self.get_action_display()} at {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def decided_by(self) -> str:
        if self.moderator_id:
            return self.moderator.username
        if self.rule_name:
            return f"rule: {self.rule_name}"
        if self.action == self.Action.REPORTED:
            return self.reporter.username if self.reporter_id else "a reader"
        return "automatic" if self.action != self.Action.DELETED else "author"
