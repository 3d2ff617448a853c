"""A story page's article (everything above the comments) rendered once per version of the story and kept
in the process, so that a page made anew after a comment costs its thread and the story's comment count
rather than the story's queries and templates again.

An article is kept with the generations of what it shows (the site's sections, tags, regions and
sources; the story; the stories it lists as other coverage), read before it was rendered, and used
only while they are unchanged: whatever invalidates the cached story page (stories/pagecache.py)
makes the article anew too, and a new comment, which only bumps the story's discussion, leaves it
kept. The list filters the back link carries stay out of the kept HTML, and articles are kept per
host. The story's view count is shown as it was when the article was made: up to ARTICLE_SECONDS
old, as long as a kept article lasts (which also bounds one kept across a Redis restart, which resets
the generations).
"""

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from newsreader.personal import KeptHere

from . import pagecache
from .models import Story
from .selectors import story_for_page, story_page_metadata

# Stands for the list's filters while an article is rendered. A story's text cannot hold a NUL
# (PostgreSQL refuses it), so the mark only ever comes from here.
_BACK_QUERY_MARK = "\x00back-query\x00"
ARTICLE_SECONDS = 60
# Kept articles per process, the least recently read forgotten first: 20 to 60 KB each, a few MB in all.
ARTICLES_IN_PROCESS = 200

_kept_articles = KeptHere(ARTICLES_IN_PROCESS, ARTICLE_SECONDS)


@dataclass(frozen=True)
class Article:
    """A story as its page shows it, with its head and article rendered."""

    story: Story
    head: SafeString
    body: str
    # What the article shows, and the generation of each when it was rendered (None: not known then).
    scopes: tuple[str, ...]
    generations: dict[str, int] | None

    def is_current(self, generations: dict[str, int] | None) -> bool:
        """Whether nothing the article shows changed since it was made, by these generations (None: unknown)."""
        if self.generations is None or generations is None:
            return False
        return all(generations.get(scope) == generation for scope, generation in self.generations.items())

    def for_page(self, *, back_query: str) -> "ArticleOnPage":
        """The head and the article for a page the list with these filters (`back_query`) led to."""
        body = self.body.replace(_BACK_QUERY_MARK, f"?{escape(back_query)}" if back_query else "")
        return ArticleOnPage(self.head, mark_safe(body))  # noqa: S308 - rendered by the template; the query is escaped


@dataclass(frozen=True)
class ArticleOnPage:
    head: SafeString
    body: SafeString


def scopes_of(story: Story) -> tuple[str, ...]:
    """What a story's article shows: the site's labels, the story, and the stories listed beside it."""
    beside = (story.duplicate_of, *story.published_coverage)
    return (pagecache.SITE, *(pagecache.story_scope(other.slug) for other in (story, *beside) if other is not None))


@dataclass(frozen=True)
class Lookup:
    article: Article | None  # None: no such story is published
    view_counted: bool  # the view by `reader` was counted on the way
    made_now: bool  # the article was rendered for this request, from a story read now
    # The generations of what the page shows (the article's, and the story's discussion), read before it
    # was made; None when the cache is away.
    generations: dict[str, int] | None


def story_article(request: HttpRequest, slug: str, *, reader: str) -> Lookup:
    """The published story with this slug and its rendered article: kept when it is current, made (and
    kept) when not."""
    key = (slug, request.build_absolute_uri("/"))
    kept = _kept_articles.get_many([key]).get(key)
    count_view = (kept.story.pk, reader) if kept is not None else None
    scopes = kept.scopes if kept is not None else (pagecache.SITE, pagecache.story_scope(slug))
    generations = pagecache.current_generations((*scopes, pagecache.discussion_scope(slug)), count_view=count_view)
    counted = count_view is not None and generations is not None
    if kept is not None and kept.is_current(generations):
        return Lookup(kept, counted, made_now=False, generations=generations)
    story = story_for_page(slug)
    if story is None:
        return Lookup(None, counted, made_now=False, generations=generations)
    scopes = scopes_of(story)
    # Generations read after rendering could include a change the article missed: an article whose
    # scopes were not all read first is kept only to read them next time.
    current = (
        {scope: generations[scope] for scope in scopes} if generations and set(scopes) <= generations.keys() else None
    )
    article = _render(request, story, scopes, current)
    if generations is not None:
        _kept_articles.set_many({key: article})
    return Lookup(article, counted, made_now=True, generations=generations)


def _render(request: HttpRequest, story: Story, scopes: tuple[str, ...], generations: dict[str, int] | None) -> Article:
    meta = story_page_metadata(request, story)
    head = render_to_string("stories/_story_head.html", {"story": story, "meta": meta, "SITE_NAME": settings.SITE_NAME})
    context = {"story": story, "back_query": _BACK_QUERY_MARK}
    body = render_to_string("stories/_story_article.html", context, request)
    return Article(story, mark_safe(head), body, scopes, generations)  # noqa: S308 - rendered by the template


def forget_kept_articles() -> None:
    """Empty what this process keeps (for tests, which start each with empty caches)."""
    _kept_articles.clear()
