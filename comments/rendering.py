"""The HTML of the comments in a thread, built in Python; everything around them is a template.

A page of a busy thread holds hundreds of comments. Through a Django template a comment costs about
0.4 ms, which put the first page of a 500-comment thread at a hundredth of a bare page's speed; here
it costs a few microseconds. This is the one place the markup of a comment lives: the thread, the
"Load more" pages, a comment's own page and the answers to htmx posts all use it. Every value is
escaped except the comment's body, sanitised when it was written.
"""

from collections.abc import Iterable
from datetime import datetime, tzinfo
from functools import cache
from html import escape

from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from .selectors import Row

_SENTINEL = 987654321


@cache
def _url_formats() -> dict[str, str]:
    """Each comment URL as a format string, reversed once: reverse() per comment would cost more than the rest."""
    names = ("comment", "reply", "edit", "delete", "report")
    return {name: reverse(f"comments:{name}", kwargs={"pk": _SENTINEL}).replace(str(_SENTINEL), "{}") for name in names}


def comment_url(name: str, pk: int) -> str:
    return _url_formats()[name].format(pk)


def _when(moment: datetime, zone: tzinfo) -> tuple[str, str]:
    local = moment.astimezone(zone)
    return local.isoformat(), local.strftime("%Y-%m-%d %H:%M")


def card(row: Row, *, zone: tzinfo | None = None) -> SafeString:
    """One comment: who, when, its text (or its tombstone), and what this reader may do with it."""
    zone = zone or timezone.get_current_timezone()
    comment = row.comment
    pk = comment.pk
    parts = [f'<article class="comment-card" id="comment-{pk}-card">\n<header class="comment-meta">']
    if row.full:
        author = comment.author_name or "[deleted]"
        parts.append(f'<span class="comment-author">{escape(author)}</span>')
    iso, shown = _when(comment.created_at, zone)
    parts.append(
        f'<a class="comment-permalink" href="{comment_url("comment", pk)}#comment-{pk}">'
        f'<time datetime="{iso}">{shown}</time></a>'
    )
    if row.full and comment.edited_at:
        iso, shown = _when(comment.edited_at, zone)
        parts.append(f'<span class="comment-edited">edited <time datetime="{iso}">{shown}</time></span>')
    if row.awaiting:
        parts.append('<span class="comment-awaiting-label">awaiting moderation</span>')
    parts.append("</header>\n")
    if row.full:
        parts.append(f'<div class="comment-body">{comment.body_html}</div>\n')
    else:
        parts.append(f'<p class="comment-body comment-tombstone-text">{comment.tombstone_text()}</p>\n')
    if row.has_actions:
        parts.append('<p class="comment-actions">')
        for allowed, name, label in (
            (row.can_reply, "reply", "Reply"),
            (row.can_edit, "edit", "Edit"),
            (row.can_delete, "delete", "Delete"),
            (row.can_report, "report", "Report"),
        ):
            if allowed:
                url = comment_url(name, pk)
                parts.append(f'<a href="{url}" hx-get="{url}" hx-target="#comment-{pk}-slot">{label}</a>')
        parts.append("</p>\n")
    parts.append("</article>")
    return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped; bodies were sanitised when written


def rows(thread: Iterable[Row]) -> SafeString:
    """Comments as nested list items, in reading order; each opens its replies' list, closed after them."""
    zone = timezone.get_current_timezone()
    parts = []
    for row in thread:
        comment = row.comment
        pk = comment.pk
        classes = "comment" + ("" if row.full else " comment-tombstone") + (" comment-awaiting" if row.awaiting else "")
        parts.append(
            f'<li class="{classes}" id="comment-{pk}">\n{card(row, zone=zone)}\n'
            f'<div class="comment-slot" id="comment-{pk}-slot"></div>\n'
            f'<ol class="comment-replies" id="comment-{pk}-replies">'
        )
        if not row.has_replies:
            parts.append("</ol>")
            if row.continue_url:
                count = row.hidden_replies
                parts.append(
                    f'\n<p class="comment-continue"><a href="{escape(row.continue_url)}">Continue this thread '
                    f"({count} more repl{'y' if count == 1 else 'ies'}) →</a></p>"
                )
            parts.append("</li>" + "</ol></li>" * len(row.closes))
        parts.append("\n")
    return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped; bodies were sanitised when written
