"""The story list's parts rendered once and kept: each story's card, and the section menu.

A card is kept under a key made of every value it shows (title, dek, picture, labels, the section's
and source's names and slugs, the comment count…), of the card template's source and of the time zone
its date is shown in. Any change to one of them is a new key, so a kept card is never stale and nothing
has to invalidate it; keys no page asks for any more expire. The comment count is one of those
values: a new comment renders that one card again, and the list's counts lag only as long as the page
cache keeps a list page (LIST_PAGE_CACHE_SECONDS).

Cards are kept at two levels: in this process, by the row they show, so a list page usually joins its
cards without a round trip; and in the shared cache, so a process renders a card another one already
rendered only when the cache is unreachable. What differs between pages showing the same card stays
out of the kept HTML: the list's filters, which each card's links carry back to the story page, and
whether its picture loads at once (the first three cards) or lazily.
"""

import hashlib
from collections.abc import Sequence
from functools import cache as once
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.template.loader import get_template, render_to_string
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .models import CardRow, Section, Source, Story

TEMPLATE = "stories/_story_card.html"
# Long enough that the first pages of a busy list are rendered once a day, short enough that the cards
# of stories no list shows any more leave the shared cache.
CARD_SECONDS = 24 * 60 * 60
# Cards whose picture the browser loads at once: those above the fold.
EAGER_IMAGES = 3
# Stands for the list's filters while a card is rendered. A story's text cannot hold a NUL (PostgreSQL
# refuses it), so the mark only ever comes from here.
_QUERY_MARK = "\x00list-query\x00"
_LAZY = ' loading="lazy"'
# Cards kept in this process, by row: a hundred pages' worth, a few megabytes.
_KEPT_HERE_LIMIT = 2_000
_kept_here: dict[CardRow, str] = {}


@once
def _template_digest() -> bytes:
    """The card template's source, with the time zone dates are shown in: a deploy that changes either
    changes every card's key."""
    source = get_template(TEMPLATE).template.source
    return hashlib.blake2b(f"{settings.TIME_ZONE}\n{source}".encode(), digest_size=8).digest()


def card_key(row: CardRow) -> str:
    digest = hashlib.blake2b(repr(tuple(row)).encode(), digest_size=12, key=_template_digest()).hexdigest()
    return f"newsreader:card:{row.pk}:{digest}"


def _render(row: CardRow) -> str:
    story = Story(
        pk=row.pk,
        slug=row.slug,
        title=row.title,
        dek=row.dek,
        published_at=row.published_at,
        reading_minutes=row.reading_minutes,
        comment_count=row.comment_count,
        ai_labelled=row.ai_labelled,
        image_url=row.image_url,
        image_srcset=row.image_srcset,
        image_width=row.image_width,
        image_height=row.image_height,
    )
    story.source = Source(name=row.source_name, slug=row.source_slug)
    if row.section_slug is not None:
        story.section = Section(name=row.section_name, slug=row.section_slug)
    return render_to_string(TEMPLATE, {"story": story, "page_query": _QUERY_MARK})


def _cards(rows: Sequence[CardRow]) -> list[str]:
    """The kept HTML of each row's card: from this process, else the shared cache (one round trip), else
    rendered and kept in both."""
    found = {row: html for row in rows if (html := _kept_here.get(row)) is not None}
    missing = {card_key(row): row for row in rows if row not in found}
    if missing:
        shared = cache.get_many(list(missing))
        rendered = {key: _render(row) for key, row in missing.items() if key not in shared}
        if rendered:
            cache.set_many(rendered, CARD_SECONDS)
        if len(_kept_here) + len(missing) > _KEPT_HERE_LIMIT:
            _kept_here.clear()
        for key, row in missing.items():
            found[row] = _kept_here[row] = shared.get(key) or rendered[key]
    return [found[row] for row in rows]


def joined_cards(rows: Sequence[CardRow], *, query: str) -> SafeString:
    """The cards of `rows` in order, their links carrying the list's `query`."""
    query_suffix = f"?{escape(query)}" if query else ""
    cards = []
    for position, html in enumerate(_cards(rows)):
        html = html.replace(f"?{_QUERY_MARK}", query_suffix)
        if position < EAGER_IMAGES:
            html = html.replace(_LAZY, "", 1)
        cards.append(html)
    return mark_safe("".join(cards))  # noqa: S308 - rendered by the card template; the query is escaped above


@lru_cache(maxsize=64)
def section_menu(sections: tuple[tuple[str, str], ...], *, current: str) -> SafeString:
    """The menu of sections ((name, slug), in order) with `current` marked, rendered once per process for
    each set of sections: the rows are the key, so a renamed section is a new menu."""
    context = {"sections": [Section(name=name, slug=slug) for name, slug in sections], "filters": {"section": current}}
    return render_to_string("stories/_section_nav.html", context)
