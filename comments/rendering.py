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

from newsreader import personal

from .selectors import Row

_SENTINEL = 987654321


@cache
def _url_formats() -> dict[str, str]:
    """Each comment URL as a format string, reversed once: reverse() per comment would cost more than the rest."""
    names = ("comment", "reply", "edit", "delete", "report", "recommend", "pick")
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
        if comment.author_badge:
            badge = comment.author_badge
            parts.append(f'<span class="comment-badge comment-badge-{badge}">{_BADGE_LABELS[badge]}</span>')
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
    if row.full and comment.is_picked:
        parts.append('<span class="comment-badge comment-badge-pick">Editors\' pick</span>')
    if row.full and comment.recommendation_count:
        count = comment.recommendation_count
        parts.append(f'<span class="comment-recommendations">{count} recommendation{"" if count == 1 else "s"}</span>')
    parts.append("</header>\n")
    if row.full:
        parts.append(f'<div class="comment-body">{comment.body_html}</div>\n')
    else:
        parts.append(f'<p class="comment-body comment-tombstone-text">{comment.tombstone_text()}</p>\n')
    if row.has_actions:
        parts.append(actions(row))
    elif row.personal:
        # On a page every reader shares: each signed-in reader's own actions are filled in per request.
        parts.append(personal.marked("comment_actions", story=comment.story_id, comment=pk))
    parts.append("</article>")
    return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped; bodies were sanitised when written


def actions(row: Row) -> SafeString:
    """What this reader may do with the comment: everything here is theirs alone, everything else in the
    card is the same for every reader."""
    comment = row.comment
    pk = comment.pk
    html = ['<div class="comment-actions">']
    for allowed, name, label in (
        (row.can_reply, "reply", "Reply"),
        (row.can_edit, "edit", "Edit"),
        (row.can_delete, "delete", "Delete"),
        (row.can_report, "report", "Report"),
    ):
        if allowed:
            url = comment_url(name, pk)
            html.append(f'<a href="{url}" hx-get="{url}" hx-target="#comment-{pk}-slot">{label}</a>')
    if row.can_recommend:
        label = "Recommended" if row.recommended else "Recommend"
        html.append(_toggle(row, "recommend", "recommend", on=row.recommended, label=label, pressed=True))
    if row.can_pick:
        label = "Remove from editors' picks" if comment.is_picked else "Make editors' pick"
        html.append(_toggle(row, "pick", "picked", on=comment.is_picked, label=label))
    html.append("</div>\n")
    return mark_safe("".join(html))  # noqa: S308 - every value above is escaped


_BADGE_LABELS = {"moderator": "Moderator", "staff": "Staff"}


def _toggle(row: Row, name: str, field: str, *, on: bool, label: str, pressed: bool = False) -> str:
    """A one-button form that turns `field` off when it is on and on when off: a plain POST that comes back to
    the page without JavaScript; with htmx, the answer replaces the card. `pressed`: a toggle button whose
    state `on` is announced (aria-pressed)."""
    pk = row.comment.pk
    url = comment_url(name, pk)
    state = f' aria-pressed="{"true" if on else "false"}"' if pressed else ""
    return (
        f'<form class="comment-toggle" method="post" action="{url}" hx-post="{url}" '
        f'hx-target="#comment-{pk}-card" hx-swap="outerHTML" data-comment-toggle="{name}">'
        f'<input type="hidden" name="csrfmiddlewaretoken" value="{escape(row.csrf_token)}">'
        f'<input type="hidden" name="{field}" value="{"0" if on else "1"}">'
        f'<button type="submit" class="link-button"{state}>{label}</button>'
        "</form>"
    )


def rows(thread: Iterable[Row]) -> SafeString:
    """Comments as nested list items, in reading order; each opens its replies' list, closed after them."""
    zone = timezone.get_current_timezone()
    parts = []
    for row in thread:
        comment = row.comment
        pk = comment.pk
        classes = "comment" + ("" if row.full else " comment-tombstone") + (" comment-awaiting" if row.awaiting else "")
        if row.full and comment.is_picked:
            classes += " comment-picked"
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
