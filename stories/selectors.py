"""Reads behind the reader's pages: the list's filters and pages, and the metadata a story page publishes."""

import json
import re
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest, QueryDict
from django.utils.html import _json_script_escapes

from .models import CardRow, Region, Section, Source, Story, StoryQuerySet, Tag, list_path, listed_card_rows

# IPTC's term for text a model produced, used by schema.org's digitalSourceType.
AI_GENERATED_SOURCE_TYPE = "https://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


@dataclass(frozen=True)
class StoryFilters:
    """The list filters a reader chose, readable from and writable to a query string."""

    section: str = ""
    tag: str = ""
    region: str = ""
    source: str = ""
    q: str = ""
    # Where in the list: a page number (search results, and old links), or a keyset cursor.
    page: str = ""
    after: str = ""
    before: str = ""

    @classmethod
    def from_query(cls, query: QueryDict) -> "StoryFilters":
        return cls(**{f.name: query.get(f.name, "").strip()[:200] for f in fields(cls)})

    @property
    def is_filtered(self) -> bool:
        return any((self.section, self.tag, self.region, self.source, self.q))

    def querystring(self, *, include_page: bool = False) -> str:
        """The filters as `a=b&c=d` (no page or cursor unless asked), for links that keep them."""
        names = [f.name for f in fields(self) if include_page or f.name not in _POSITION]
        return urlencode([(name, getattr(self, name)) for name in names if getattr(self, name)])

    def without(self, name: str) -> str:
        """The query string of these filters with `name` removed (and back to the first page)."""
        return replace(self, **{name: ""}).querystring()


@dataclass(frozen=True)
class ActiveFilter:
    """A filter the reader chose: its readable name, the query string without it, and what a story must
    match to pass it (the ids of the section, tag, source, or region and its countries; or the words)."""

    kind: str
    label: str
    remove: str
    ids: tuple[int, ...] = ()
    words: str = ""

    def narrow(self, stories: StoryQuerySet) -> StoryQuerySet:
        if self.kind == "search":
            return stories.search(self.words)
        if not self.ids:
            return stories.none()
        if self.kind == "region":
            return stories.in_regions(self.ids)
        narrowing = {"section": stories.in_section, "tag": stories.tagged, "source": stories.from_source}
        return narrowing[self.kind](self.ids[0])


def active_filters(filters: StoryFilters) -> list[ActiveFilter]:
    """The filters the reader chose, each looked up once (one query a filter, none for a search)."""
    active = []
    for kind, model in (("section", Section), ("tag", Tag), ("region", Region), ("source", Source)):
        slug = getattr(filters, kind)
        if not slug:
            continue
        if kind == "region":
            # The region, and its countries when it is a continent.
            regions = list(Region.objects.filter(Q(slug=slug) | Q(parent__slug=slug)).select_related("parent"))
            found = next((region for region in regions if region.slug == slug), None)
            ids = tuple(region.pk for region in regions)
        else:
            found = model.objects.filter(slug=slug).first()
            ids = (found.pk,) if found else ()
        active.append(ActiveFilter(kind, str(found) if found else slug, filters.without(kind), ids))
    if filters.q:
        active.append(ActiveFilter("search", f"“{filters.q}”", filters.without("q"), words=filters.q))
    return active


def filter_labels(filters: StoryFilters) -> list[dict[str, str]]:
    """The active filters with readable names and a link that removes each one."""
    return [{"kind": f.kind, "label": f.label, "remove": f.remove} for f in active_filters(filters)]


def _listed(active: list[ActiveFilter]) -> StoryQuerySet:
    stories = Story.objects.published().one_per_coverage_group()
    for chosen in active:
        stories = chosen.narrow(stories)
    return stories


_POSITION = frozenset({"page", "after", "before"})
_CURSOR = re.compile(r"^(\d{1,18})-(\d{1,18})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def story_cursor(published_at: datetime, pk: int) -> str:
    """A story's place in the newest-first list: its publication time in microseconds and its id."""
    return f"{(published_at - _EPOCH) // _MICROSECOND}-{pk}"


def _cursor_of(row: CardRow) -> str:
    return story_cursor(row.published_at, row.pk)


def _parse_cursor(cursor: str) -> tuple[datetime, int] | None:
    match = _CURSOR.match(cursor)
    if not match:
        return None
    try:
        return _EPOCH + int(match[1]) * _MICROSECOND, int(match[2])
    except OverflowError:
        return None


@dataclass(frozen=True)
class StoryListPage:
    """One page of the story list: its cards' rows, and links to the newer and older pages ("" for none)."""

    stories: list[CardRow]
    newer_url: str = ""
    older_url: str = ""


def story_list_page(filters: StoryFilters, active: list[ActiveFilter], *, per_page: int) -> StoryListPage:
    """The page of the list the filters ask for, in one query however long the list is.

    Newest first, a page is found by keyset (`after` or `before` a story's cursor), never by counting or
    skipping rows. Search results, ranked among at most SEARCH_CANDIDATES matches, are paged by number.
    Each page reads one row more than it shows, to tell whether there is a next one."""
    if filters.q:
        return _ranked_page(_listed(active), filters, per_page=per_page)
    if any(not chosen.ids for chosen in active):
        return StoryListPage([])  # a filter names a section, tag, region or source there is none of
    narrowed = {_NARROWING[chosen.kind]: chosen.ids if chosen.kind == "region" else chosen.ids[0] for chosen in active}
    after, before = _parse_cursor(filters.after), _parse_cursor(filters.before)
    if before and not after:
        rows = listed_card_rows(**narrowed, before=before, limit=per_page + 1)
        if rows:
            more_newer, rows = len(rows) > per_page, rows[:per_page][::-1]
            return StoryListPage(
                rows,
                newer_url=_list_url(filters, before=_cursor_of(rows[0])) if more_newer else "",
                older_url=_list_url(filters, after=_cursor_of(rows[-1])),
            )
        # Nothing is newer than the cursor: the newest page it is.
    rows = listed_card_rows(**narrowed, after=after, limit=per_page + 1)
    more_older, rows = len(rows) > per_page, rows[:per_page]
    newer_url = ""
    if after:
        newer_url = _list_url(filters, before=_cursor_of(rows[0])) if rows else _list_url(filters)
    older_url = _list_url(filters, after=_cursor_of(rows[-1])) if more_older else ""
    return StoryListPage(rows, newer_url=newer_url, older_url=older_url)


_NARROWING = {"section": "section_id", "tag": "tag_id", "region": "region_ids", "source": "source_id"}


def _ranked_page(stories: StoryQuerySet, filters: StoryFilters, *, per_page: int) -> StoryListPage:
    number = page_number(filters.page)
    start = (number - 1) * per_page
    rows = stories[start : start + per_page + 1].card_rows()
    more, rows = len(rows) > per_page, rows[:per_page]
    newer_url = ""
    if number > 1:
        newer_url = _list_url(filters, page=str(number - 1) if number > 2 else "")
    return StoryListPage(rows, newer_url=newer_url, older_url=_list_url(filters, page=str(number + 1)) if more else "")


def page_number(text: str) -> int:
    """A page number from the query string: 1 for anything that is not a positive number."""
    return int(text) if text.isdigit() and 0 < int(text) < 10**9 else 1


def numbered_page_url(filters: StoryFilters, active: list[ActiveFilter], *, per_page: int) -> str:
    """Where an old link to page N of the newest-first list goes now: the page after the story that
    ended page N-1 (one query), or the first page when the list is not that long."""
    start = (page_number(filters.page) - 1) * per_page
    if not start:
        return _list_url(filters)
    stories = _listed(active).order_by("-published_at", "-pk")
    previous = list(stories.values_list("published_at", "pk")[start - 1 : start])
    return _list_url(filters, after=story_cursor(*previous[0])) if previous else _list_url(filters)


def _list_url(filters: StoryFilters, **position: str) -> str:
    """The list's URL with these filters at `position` (a page number or a cursor; none for the first page)."""
    query = replace(filters, **{**dict.fromkeys(_POSITION, ""), **position}).querystring(include_page=True)
    return f"{list_path()}?{query}" if query else list_path()


def story_for_page(slug: str) -> Story | None:
    """The published story with this slug as its page shows it, with its tags by name (`tag_list`), in
    two queries: one more when other sources' stories cover the same news (`published_coverage`), one
    more when it covers news another source's story had first (`duplicate_of`). Both are rare, and
    joining them in cost every page more; so did fetching the tags through prefetch_related()."""
    try:
        story = Story.objects.published().for_page().get(slug=slug)
    except Story.DoesNotExist:
        return None
    story.tag_list = list(Tag.objects.filter(stories=story).order_by("name"))
    story.published_coverage = list(Story.objects.covering(story)) if story.has_coverage else []
    if story.duplicate_of_id:
        story.duplicate_of = Story.objects.as_links().get(pk=story.duplicate_of_id)
    return story


def story_page_metadata(request: HttpRequest, story: Story) -> dict[str, str]:
    """Canonical URL, Open Graph values and schema.org NewsArticle JSON-LD for a story page (of a story
    from `story_for_page`)."""
    canonical = request.build_absolute_uri(story.get_absolute_url())
    image = request.build_absolute_uri(story.image_url) if story.image_url else ""
    article = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": story.title[:110],
        "description": story.dek,
        "datePublished": story.published_at.isoformat(),
        "dateModified": story.updated_at.isoformat(),
        "mainEntityOfPage": canonical,
        "url": canonical,
        "inLanguage": story.language or "en",
        "isBasedOn": story.original_url,
        "publisher": {"@type": "Organization", "name": settings.SITE_NAME},
        "sourceOrganization": {"@type": "Organization", "name": story.source.name},
    }
    if story.author:
        article["author"] = {"@type": "Person", "name": story.author}
    if story.section_id:
        article["articleSection"] = story.section.name
    if story.tag_list:
        article["keywords"] = [tag.name for tag in story.tag_list]
    if image:
        article["image"] = [image]
    if story.ai_generated:
        article["digitalSourceType"] = AI_GENERATED_SOURCE_TYPE
    return {
        "canonical_url": canonical,
        "image_url": image,
        "json_ld": json.dumps(article, ensure_ascii=False).translate(_json_script_escapes),
    }
