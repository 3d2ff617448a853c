"""Reads behind the comment pages: a page of a story's thread, one comment's thread, a reader's own comments.

A thread comes from one query (comments with their authors' names) and is shaped in Python: which
comments this reader sees in full, which stand as tombstones because published replies hang under
them, how deep replies nest before "continue this thread", and what the reader may do with each.
"""

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connection, models
from django.db.models import Exists, Max, OuterRef, Q, Subquery
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.utils import timezone

from follows import selectors as follows_selectors
from newsreader.database import rows_compiled_once
from newsreader.personal import limited_ids
from stories.models import Story

from . import moderation
from .models import MODERATE_PERMISSION, Comment, Commenter, Recommendation, Report, ThreadComment


class Sort(models.TextChoices):
    OLDEST = "oldest", "Oldest"
    NEWEST = "newest", "Newest"
    REPLIES = "replies", "Most replies"
    RECOMMENDED = "recommended", "Most recommended"
    # Not an order but a tab of its own: the editors' picks alone, wherever they are in their threads.
    PICKS = "picks", "Editors' picks"


_ORDERINGS = {
    Sort.OLDEST: ["created_at", "pk"],
    Sort.NEWEST: ["-created_at", "-pk"],
    Sort.REPLIES: ["-thread_reply_count", "created_at", "pk"],
    Sort.RECOMMENDED: ["-recommendation_count", "created_at", "pk"],
}
_SORT_KEYS = {
    Sort.OLDEST: lambda c: (c.created_at, c.pk),
    Sort.NEWEST: lambda c: (-c.created_at.timestamp(), -c.pk),
    Sort.REPLIES: lambda c: (-c.thread_reply_count, c.created_at, c.pk),
    Sort.RECOMMENDED: lambda c: (-c.recommendation_count, c.created_at, c.pk),
}


@dataclass(frozen=True)
class Viewer:
    """Who is reading, and whether they may post on this story; `notice` says why not when they may not.

    `in_good_standing`: verified, neither banned nor suspended, so they may recommend comments (on a
    closed story too); `can_moderate`: they may choose editors' picks; `csrf_token`: what their forms on
    a comment carry.
    """

    user_id: int | None = None
    can_post: bool = False
    notice: str = ""
    mode: str = Story.CommentsMode.OPEN
    now: datetime = field(default_factory=timezone.now)
    in_good_standing: bool = False
    can_moderate: bool = False
    csrf_token: str = ""

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
    can_recommend: bool = False
    recommended: bool = False
    can_pick: bool = False
    # Shown on a page every reader shares, where each signed-in reader's actions are a personal part.
    personal: bool = False
    csrf_token: str = ""

    @property
    def has_actions(self) -> bool:
        return (
            self.can_reply or self.can_edit or self.can_delete or self.can_report or self.can_recommend or self.can_pick
        )


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


def viewer_for(
    request: HttpRequest,
    story: Story,
    rules: tuple[moderation.Rule, ...],
    *,
    standing: dict | None = None,
    csrf_token: str | None = None,
) -> Viewer:
    """The reader of this request and whether they may post (`moderation.refusal` says why not); one query
    for a signed-in reader (their `standing`, unless the caller knows it), none otherwise. `csrf_token`: the
    request's, when the caller has it already."""
    mode = moderation.effective_mode(story, rules)
    if not request.user.is_authenticated:
        return Viewer(mode=mode)
    now = timezone.now()
    if standing is None:
        standing = reader_standing(request.user.pk)
    commenter = Commenter(
        user_id=request.user.pk,
        is_banned=standing["is_banned"],
        suspended_until=standing["suspended_until"],
    )
    refusal = moderation.refusal(
        commenter=commenter,
        email_verified=standing["email_verified"],
        story=story,
        rules=rules,
        now=now,
    )
    notice = refusal.message if refusal else ""
    in_good_standing = standing["email_verified"] and commenter.refusal(now=now) is None
    return Viewer(
        user_id=request.user.pk,
        can_post=refusal is None,
        notice=notice,
        mode=mode,
        now=now,
        in_good_standing=bool(in_good_standing),
        can_moderate=standing["can_moderate"],
        csrf_token=csrf_token or get_token(request),
    )


def reader_standing(user_id: int) -> dict:
    """What decides whether a reader may post and moderate, from one query: `email_verified`, `can_moderate`,
    `is_banned` and `suspended_until`."""
    found = (
        get_user_model()
        .objects.filter(pk=user_id)
        .annotate(
            email_verified=Exists(EmailAddress.objects.filter(user_id=OuterRef("pk"), verified=True)),
            can_moderate=_may_moderate(),
        )
        .values("email_verified", "can_moderate", "commenter__is_banned", "commenter__suspended_until")
        .first()
    ) or {}
    return {
        "email_verified": bool(found.get("email_verified")),
        "can_moderate": bool(found.get("can_moderate")),
        "is_banned": bool(found.get("commenter__is_banned")),
        "suspended_until": found.get("commenter__suspended_until"),
    }


def _may_moderate() -> Q:
    """`user.has_perm(MODERATE_PERMISSION)` as part of a query on users, so the viewer's one query says it:
    active superusers, and active accounts given the permission directly or through a group."""
    app_label, codename = MODERATE_PERMISSION.split(".")
    permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    return Q(is_active=True) & (
        Q(is_superuser=True)
        | Exists(permission.filter(user=OuterRef("pk")))
        | Exists(permission.filter(group__user=OuterRef("pk")))
    )


def thread_page(*, story: Story, viewer: Viewer, sort: str, start: int, per_page: int | None = None) -> ThreadPage:
    """One page of top-level comments with their whole threads, from one query."""
    per_page = per_page or settings.COMMENTS_PER_PAGE
    if sort == Sort.PICKS:
        return _picks_page(story=story, viewer=viewer, start=start, per_page=per_page)
    page = functools.partial(_thread_page_comments, sort=sort, start=start, per_page=per_page)
    values = {"story_id": story.pk} | ({"viewer_id": viewer.user_id} if viewer.user_id is not None else {})
    shape = ("thread_page", sort, start, per_page, viewer.user_id is None)
    comments = [ThreadComment(*row) for row in rows_compiled_once(shape, page, **values)]
    top = sorted((c for c in comments if c.parent_id is None), key=_SORT_KEYS[sort])
    next_start = start + per_page if len(top) > per_page else None
    rows = build_rows(comments, roots=top[:per_page], viewer=viewer)
    return ThreadPage(story=story, rows=rows, sort=sort, start=start, next_start=next_start)


# --- What posting reads ------------------------------------------------------------------------

# Of a story: moderation's gate, the answer, and the page a refusal is shown on. Not the rest, which for a
# story's body can be 200,000 characters. Of the comment replied to: where the reply goes, and whose it is.
POSTING_STORY_FIELDS = (
    "id",
    "slug",
    "title",
    "status",
    "published_at",
    "comments_mode",
    "comment_count",
    "source",
    "section",
)


def _columns(model: type[models.Model], names: tuple[str, ...]) -> tuple[str, ...]:
    """The columns of these fields, in the model's order (the order `Model.from_db` takes values in)."""
    return tuple(field.attname for field in model._meta.concrete_fields if field.name in names)


_POSTING_STORY_COLUMNS = _columns(Story, POSTING_STORY_FIELDS)
_REPLIED_COLUMNS = _columns(Comment, ("id", "story", "author", "root", "depth", "status"))


def story_for_posting(slug: str) -> Story | None:
    """The story with this slug, as much of it as posting reads; None when there is none."""
    rows = rows_compiled_once("story_for_posting", _story_for_posting, planned=True, slug=slug)
    return Story.from_db(connection.alias, _POSTING_STORY_COLUMNS, rows[0]) if rows else None


def comment_for_replying(pk: int) -> Comment | None:
    """The comment with this id and its story, as much of them as replying reads; None when there is none."""
    rows = rows_compiled_once("comment_for_replying", _comment_for_replying, planned=True, pk=pk)
    if not rows:
        return None
    comment = Comment.from_db(connection.alias, _REPLIED_COLUMNS, rows[0][: len(_REPLIED_COLUMNS)])
    comment.story = Story.from_db(connection.alias, _POSTING_STORY_COLUMNS, rows[0][len(_REPLIED_COLUMNS) :])
    return comment


def _story_for_posting(*, slug: str) -> models.QuerySet:
    return Story.objects.filter(slug=slug).order_by().values_list(*_POSTING_STORY_COLUMNS)


def _comment_for_replying(*, pk: int) -> models.QuerySet:
    story_columns = (f"story__{name}" for name in _POSTING_STORY_COLUMNS)
    return Comment.objects.filter(pk=pk).order_by().values_list(*_REPLIED_COLUMNS, *story_columns)


def _thread_page_comments(
    *, story_id: int, sort: str, start: int, per_page: int, viewer_id: int | None = None
) -> models.QuerySet:
    """The page's threads whole, and the first top-level comment of the next page alone: it says whether
    there is a next page without a second query. Unordered: the tree is put in order in Python."""
    roots = (
        Comment.objects.filter(story_id=story_id)
        .top_level()
        .listed_for(viewer_id)
        .order_by(*_ORDERINGS[sort])
        .values("pk")
    )
    return (
        Comment.objects.filter(story_id=story_id)
        .filter(Q(pk__in=roots[start : start + per_page + 1]) | Q(root_id__in=roots[start : start + per_page]))
        .order_by()
        .thread_values()
    )


def _picks_page(*, story: Story, viewer: Viewer, start: int, per_page: int) -> ThreadPage:
    """A page of the story's editors' picks, the latest first, each on its own without its replies (its
    link leads to them), from one query."""
    found = Comment.objects.filter(story=story).picks().thread_values()[start : start + per_page + 1]
    picks = [ThreadComment(*values) for values in found]
    rows = [_row(comment, 0, True, viewer) for comment in picks[:per_page]]
    mark_recommended(rows, viewer)
    next_start = start + per_page if len(picks) > per_page else None
    return ThreadPage(story=story, rows=rows, sort=Sort.PICKS, start=start, next_start=next_start)


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


def pending_rows(*, story_id: int, viewer: Viewer) -> list[Row]:
    """A reader's comments on a story that await moderation, oldest first, each as a thread of its own:
    only their author sees them, so they are not part of the thread every reader shares."""
    mine = Comment.objects.filter(story_id=story_id, author_id=viewer.user_id, status=Comment.Status.PENDING)
    pending = sorted(_thread_comments(mine), key=_SORT_KEYS[Sort.OLDEST])
    return [build_rows([comment], roots=[comment], viewer=viewer, include_hidden=True)[0] for comment in pending]


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
    mark_recommended(rows, viewer)
    return rows


def action_rows(*, comment_ids: list[int], viewer: Viewer) -> list[Row]:
    """What the reader may do with each of these comments, as a page every reader shares shows them: one
    query for the few columns that decide it, and one for which of them the reader recommended."""
    found = Comment.objects.filter(pk__in=comment_ids).values_list(
        "pk", "story_id", "status", "created_at", "author_id", "is_picked"
    )
    rows = []
    for pk, story_id, status, created_at, author_id, is_picked in found:
        comment = ThreadComment(
            pk, story_id, None, None, 0, status, "", created_at, None, 0, author_id, None, 0, is_picked, ""
        )
        rows.append(_row(comment, 0, status == Comment.Status.VISIBLE, viewer))
    mark_recommended(rows, viewer)
    return rows


def others_action_rows(*, story_id: int, comment_ids: list[int], viewer: Viewer) -> list[Row]:
    """What the reader may do with published comments none of which is theirs or recommended by them (their
    reader facts say they never commented on the story nor recommended there): no query."""
    rows = []
    for pk in comment_ids:
        comment = ThreadComment(
            pk, story_id, None, None, 0, Comment.Status.VISIBLE, "", None, None, 0, None, None, 0, False, ""
        )
        rows.append(_row(comment, 0, True, viewer))
    return rows


def stories_commented_on(user, *, status: str | None = None) -> frozenset[int] | None:
    """The stories the reader commented on (with `status`, only their comments in it), as a reader fact."""
    mine = Comment.objects.filter(author=user)
    if status is not None:
        mine = mine.filter(status=status)
    return limited_ids(mine.order_by().values_list("story_id", flat=True).distinct())


def stories_recommended_on(user) -> frozenset[int] | None:
    """The stories on which the reader recommended a comment, as a reader fact."""
    recommended = Recommendation.objects.filter(reader=user).order_by()
    return limited_ids(recommended.values_list("comment__story_id", flat=True).distinct())


def mark_recommended(rows: list[Row], viewer: Viewer) -> None:
    """Set `recommended` on the rows this reader may recommend and does: one query, none when no row
    offers them the button."""
    candidates = [row.comment.pk for row in rows if row.can_recommend]
    if not candidates:
        return
    mine = Recommendation.objects.filter(reader_id=viewer.user_id, comment_id__in=candidates).order_by()
    recommended = set(mine.values_list("comment_id", flat=True))
    for row in rows:
        row.recommended = row.comment.pk in recommended


def _shown_in_full(comment: ThreadComment, viewer: Viewer) -> bool:
    if comment.status == Comment.Status.VISIBLE:
        return True
    return (
        viewer.user_id is not None and comment.author_id == viewer.user_id and comment.status == Comment.Status.PENDING
    )


def _row(comment: ThreadComment, depth: int, full: bool, viewer: Viewer) -> Row:
    row = Row(comment=comment, depth=depth, full=full)
    if not full:
        return row
    if viewer.user_id is None:
        # A page every reader shares: a signed-in reader's actions on it are filled in for them alone.
        row.personal = comment.status == Comment.Status.VISIBLE
        return row
    own = comment.author_id == viewer.user_id
    published = comment.status == Comment.Status.VISIBLE
    row.awaiting = comment.status == Comment.Status.PENDING
    row.can_reply = viewer.can_post and published
    row.can_edit = own and viewer.can_post and comment.can_be_edited_by(viewer.user_id, now=viewer.now)
    row.can_delete = own
    row.can_report = not own and published
    row.can_recommend = not own and published and viewer.in_good_standing
    row.can_pick = published and viewer.can_moderate
    row.csrf_token = viewer.csrf_token
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


# The header counts new replies up to this many, and shows more as "99+".
UNSEEN_REPLIES_COUNTED = 100
UNSEEN_REPLIES_CACHE_SECONDS = 60


def unseen_replies_cache_key(user_id: int) -> str:
    return f"comments:unseen-replies:v1:{user_id}"


def unseen_reply_count(user_id: int) -> int:
    """Published replies other readers wrote to this reader's comments since they last opened "Your comments",
    counted up to UNSEEN_REPLIES_COUNTED. Every page a reader sees shows it in the header, so it is kept in
    the cache for UNSEEN_REPLIES_CACHE_SECONDS (a new reply shows within that) and costs one query when not."""
    key = unseen_replies_cache_key(user_id)
    count = cache.get(key)
    if count is None:
        seen_at = Commenter.objects.filter(user_id=user_id).values("replies_seen_at")[:1]
        unseen = (
            Comment.objects.visible()
            .filter(parent__author_id=user_id, created_at__gt=Subquery(seen_at))
            .exclude(author_id=user_id)
            .order_by()
        )
        count = unseen[:UNSEEN_REPLIES_COUNTED].count()
        cache.set(key, count, UNSEEN_REPLIES_CACHE_SECONDS)
    return count


def live_thread(slug: str) -> Story | None:
    """The published story with what an open thread polls for, from one query: `comment_count` (published
    comments) and `newest_comment_id`, the newest published comment's id (None without one)."""
    newest = Max("comments__pk", filter=Q(comments__status=Comment.Status.VISIBLE))
    return (
        Story.objects.published()
        .filter(slug=slug)
        .annotate(newest_comment_id=newest)
        .only("pk", "slug", "comment_count")
        .first()
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
        "recommendations": [
            {
                "comment": recommendation.comment_id,
                "story": recommendation.comment.story.title,
                "url": recommendation.comment.get_absolute_url(),
                "created_at": recommendation.created_at.isoformat(),
            }
            for recommendation in Recommendation.objects.filter(reader=user)
            .select_related("comment__story")
            .only("comment_id", "created_at", "comment__story__title")
            .order_by("created_at", "pk")
        ],
        **follows_selectors.export_for(user),
    }
