"""Reads behind the comment pages: a page of a story's thread, one comment's thread, a reader's own comments.

A thread comes from one query (comments with their authors' names) and is shaped in Python: which
comments this reader sees in full, which stand as tombstones because published replies hang under
them, how deep replies nest before "continue this thread", and what the reader may do with each.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.http import HttpRequest
from django.utils import timezone

from follows import selectors as follows_selectors
from stories.models import Story

from . import moderation
from .models import Comment, Commenter, Report, ThreadComment


class Sort(models.TextChoices):
    OLDEST = "oldest", "Oldest"
    NEWEST = "newest", "Newest"
    REPLIES = "replies", "Most replies"


_ORDERINGS = {
    Sort.OLDEST: ["created_at", "pk"],
    Sort.NEWEST: ["-created_at", "-pk"],
    Sort.REPLIES: ["-thread_reply_count", "created_at", "pk"],
}
_SORT_KEYS = {
    Sort.OLDEST: lambda c: (c.created_at, c.pk),
    Sort.NEWEST: lambda c: (-c.created_at.timestamp(), -c.pk),
    Sort.REPLIES: lambda c: (-c.thread_reply_count, c.created_at, c.pk),
}


@dataclass(frozen=True)
class Viewer:
    """Who is reading, and whether they may post on this story; `notice` says why not when they may not."""

    user_id: int | None = None
    can_post: bool = False
    notice: str = ""
    mode: str = Story.CommentsMode.OPEN
    now: datetime = field(default_factory=timezone.now)

    @property
    def is_signed_in(self) -> bool:
        return self.user_id is not None

    @property
    def is_open(self) -> bool:
        return self.mode != Story.CommentsMode.CLOSED


@dataclass(slots=True)
class Row:
    """One comment as a line of the rendered thread, with what this reader may do with it."""

    comment: ThreadComment
    depth: int = 0
    full: bool = True
    awaiting: bool = False
    has_replies: bool = False
    closes: range = range(0)
    continue_url: str = ""
    hidden_replies: int = 0
    can_reply: bool = False
    can_edit: bool = False
    can_delete: bool = False
    can_report: bool = False

    @property
    def has_actions(self) -> bool:
        return self.can_reply or self.can_edit or self.can_delete or self.can_report


@dataclass(frozen=True)
class ThreadPage:
    story: Story
    rows: list[Row]
    sort: str
    start: int
    next_start: int | None

    @property
    def sort_choices(self) -> list[tuple[str, str]]:
        return Sort.choices


def parse_sort(value: str | None) -> str:
    return value if value in Sort.values else Sort.OLDEST


def parse_start(value: str | None) -> int:
    try:
        return max(0, min(int(value or 0), 100_000))
    except ValueError:
        return 0


def viewer_for(request: HttpRequest, story: Story, rules: tuple[moderation.Rule, ...]) -> Viewer:
    """The reader of this request and whether they may post (`moderation.refusal` says why not); one query
    for a signed-in reader (their standing and email), none otherwise."""
    mode = moderation.effective_mode(story, rules)
    if not request.user.is_authenticated:
        return Viewer(mode=mode)
    now = timezone.now()
    standing = (
        get_user_model()
        .objects.filter(pk=request.user.pk)
        .annotate(email_verified=Exists(EmailAddress.objects.filter(user_id=OuterRef("pk"), verified=True)))
        .values("email_verified", "commenter__is_banned", "commenter__suspended_until")
        .first()
    ) or {}
    commenter = Commenter(
        user_id=request.user.pk,
        is_banned=bool(standing.get("commenter__is_banned")),
        suspended_until=standing.get("commenter__suspended_until"),
    )
    refusal = moderation.refusal(
        commenter=commenter,
        email_verified=bool(standing.get("email_verified")),
        story=story,
        rules=rules,
        now=now,
    )
    notice = refusal.message if refusal else ""
    return Viewer(user_id=request.user.pk, can_post=refusal is None, notice=notice, mode=mode, now=now)


def thread_page(*, story: Story, viewer: Viewer, sort: str, start: int, per_page: int | None = None) -> ThreadPage:
    """One page of top-level comments with their whole threads, from one query."""
    per_page = per_page or settings.COMMENTS_PER_PAGE
    roots = (
        Comment.objects.filter(story=story)
        .top_level()
        .listed_for(viewer.user_id)
        .order_by(*_ORDERINGS[sort])
        .values("pk")
    )
    # The page's threads whole, and the first top-level comment of the next page alone: it says whether
    # there is a next page without a second query.
    comments = _thread_comments(
        Comment.objects.filter(story=story).filter(
            Q(pk__in=roots[start : start + per_page + 1]) | Q(root_id__in=roots[start : start + per_page])
        )
    )
    top = sorted((c for c in comments if c.parent_id is None), key=_SORT_KEYS[sort])
    next_start = start + per_page if len(top) > per_page else None
    rows = build_rows(comments, roots=top[:per_page], viewer=viewer)
    return ThreadPage(story=story, rows=rows, sort=sort, start=start, next_start=next_start)


def comment_thread(*, comment: Comment, viewer: Viewer) -> list[Row]:
    """The comment and the replies under it, nested afresh from depth 0, from one query."""
    root_id = comment.root_id or comment.pk
    comments = _thread_comments(Comment.objects.filter(story_id=comment.story_id).in_threads([root_id]))
    target = next((c for c in comments if c.pk == comment.pk), None)
    if target is None:
        return []
    return build_rows(comments, roots=[target], viewer=viewer)


def single_row(comment: Comment, viewer: Viewer) -> Row:
    """A comment on its own, as just posted or changed by its author."""
    row = ThreadComment.from_comment(comment)
    return build_rows([row], roots=[row], viewer=viewer, include_hidden=True)[0]


def _thread_comments(comments: models.QuerySet) -> list[ThreadComment]:
    # Unordered: the tree is put in order in Python, so the database need not sort.
    return [ThreadComment(*values) for values in comments.order_by().thread_values()]


def build_rows(
    comments: list[ThreadComment], *, roots: list[ThreadComment], viewer: Viewer, include_hidden: bool = False
) -> list[Row]:
    """Flatten threads into rows in reading order: each root, then its replies depth first, oldest first.

    A comment is shown in full when it is published, or is the reader's own awaiting moderation; it
    stands as a tombstone when anything under it is shown; otherwise it is left out. Rows deeper than
    COMMENTS_MAX_DEPTH are not rendered: the last level shown links to the rest.
    """
    max_depth = settings.COMMENTS_MAX_DEPTH
    children: dict[int, list[ThreadComment]] = defaultdict(list)
    for comment in comments:
        if comment.parent_id is not None:
            children[comment.parent_id].append(comment)
    for replies in children.values():
        replies.sort(key=_SORT_KEYS[Sort.OLDEST])

    full = {c.pk for c in comments if _shown_in_full(c, viewer)}
    shown = set(full)
    descendants: dict[int, int] = defaultdict(int)
    by_pk = {c.pk: c for c in comments}
    for comment in sorted(comments, key=lambda c: -c.depth):
        if comment.pk in shown and comment.parent_id in by_pk:
            shown.add(comment.parent_id)
            descendants[comment.parent_id] += 1 + descendants[comment.pk]
    if include_hidden:
        shown.update(root.pk for root in roots)

    rows: list[Row] = []
    stack = [(root, 0) for root in reversed(roots)]
    while stack:
        comment, depth = stack.pop()
        if comment.pk not in shown:
            continue
        replies = [reply for reply in children.get(comment.pk, ()) if reply.pk in shown]
        row = _row(comment, depth, comment.pk in full, viewer)
        if replies and depth >= max_depth:
            row.continue_url = comment.get_absolute_url()
            row.hidden_replies = descendants[comment.pk]
        elif replies:
            row.has_replies = True
            stack.extend((reply, depth + 1) for reply in reversed(replies))
        rows.append(row)

    for index, row in enumerate(rows):
        if not row.has_replies:
            next_depth = rows[index + 1].depth if index + 1 < len(rows) else 0
            row.closes = range(row.depth - next_depth)
    return rows


def _shown_in_full(comment: ThreadComment, viewer: Viewer) -> bool:
    if comment.status == Comment.Status.VISIBLE:
        return True
    return (
        viewer.user_id is not None and comment.author_id == viewer.user_id and comment.status == Comment.Status.PENDING
    )


def _row(comment: ThreadComment, depth: int, full: bool, viewer: Viewer) -> Row:
    row = Row(comment=comment, depth=depth, full=full)
    if not full or viewer.user_id is None:
        return row
    own = comment.author_id == viewer.user_id
    published = comment.status == Comment.Status.VISIBLE
    row.awaiting = comment.status == Comment.Status.PENDING
    row.can_reply = viewer.can_post and published
    row.can_edit = own and viewer.can_post and comment.can_be_edited_by(viewer.user_id, now=viewer.now)
    row.can_delete = own
    row.can_report = not own and published
    return row


# --- The reader's own page -------------------------------------------------------------------


def comments_by(user) -> models.QuerySet:
    """A reader's comments, newest first, whatever became of them (except those they deleted)."""
    return (
        Comment.objects.by(user)
        .exclude(status=Comment.Status.DELETED)
        .select_related("story")
        .order_by("-created_at", "-pk")
    )


def replies_to(user) -> models.QuerySet:
    """Published replies other readers wrote to this reader's comments, newest first."""
    return (
        Comment.objects.visible()
        .filter(parent__author=user)
        .exclude(author=user)
        .select_related("story", "author", "parent")
        .order_by("-created_at", "-pk")
    )


def export_for(user) -> dict:
    """Everything a reader wrote, as plain data for their JSON export."""
    comments = Comment.objects.by(user).exclude(status=Comment.Status.DELETED).select_related("story")
    return {
        "username": user.username,
        "exported_at": timezone.now().isoformat(),
        "comments": [
            {
                "id": comment.pk,
                "story": {"title": comment.story.title, "url": comment.story.get_absolute_url()},
                "in_reply_to": comment.parent_id,
                "status": comment.status,
                "created_at": comment.created_at.isoformat(),
                "edited_at": comment.edited_at.isoformat() if comment.edited_at else None,
                "text": comment.body_source,
                "html": comment.body_html,
                "url": comment.get_absolute_url(),
            }
            for comment in comments.order_by("created_at", "pk")
        ],
        "reports": [
            {"comment": report.comment_id, "reason": report.reason, "created_at": report.created_at.isoformat()}
            for report in Report.objects.filter(reporter=user).order_by("created_at")
        ],
        **follows_selectors.export_for(user),
    }
