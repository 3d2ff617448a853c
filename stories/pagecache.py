"""Whole rendered pages kept for visitors (signed-out readers), answered before most of the middleware.

A view opts in with the `visitor_page` decorator. `VisitorPageCacheMiddleware` stores its pages on
their way out, with the headers the middleware below it added, and answers the next
visitor's request for the same URL from the cache without running the session, authentication,
CSRF or view code again. A visitor is a request without a session cookie: with no session nobody is
signed in, and such a request cannot carry anything a page depends on besides its URL.

A page is stored with the site's content generation read before it was rendered; any change to
stories, labels or comments bumps the generation, so a visitor never gets a page older than the
last change. The generation and the page come back in one cache round trip.
"""

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from newsreader import metrics
from newsreader.cache import UNREACHABLE

from . import viewcounts

logger = logging.getLogger(__name__)

GENERATION_KEY = "newsreader:pages:generation"
# Headers that belong to one response, never to a copy served later.
_UNCACHED_HEADERS = frozenset({"content-length", "date", "set-cookie", "x-page-cache"})


@dataclass(frozen=True)
class CachedPage:
    generation: int
    content: bytes
    headers: tuple[tuple[str, str], ...]
    # The story the page shows, whose view is counted on every hit.
    story_id: int | None

    def to_bytes(self) -> bytes:
        """One line of JSON for everything but the content, then the content as it is."""
        meta = {"generation": self.generation, "headers": self.headers, "story_id": self.story_id}
        return json.dumps(meta).encode() + b"\n" + self.content

    @classmethod
    def from_bytes(cls, data: bytes) -> "CachedPage":
        meta, _, content = data.partition(b"\n")
        fields = json.loads(meta)
        headers = tuple((name, value) for name, value in fields["headers"])
        return cls(fields["generation"], content, headers, fields["story_id"])


def bump_generation() -> None:
    """Invalidate every cached page: call after any change a visitor could see."""
    client = viewcounts.redis_client()
    if client is None:
        try:
            cache.incr(GENERATION_KEY)
        except ValueError:
            cache.set(GENERATION_KEY, 1, None)
        return
    try:
        client.incr(GENERATION_KEY)
    except redis.RedisError as error:
        # Pages kept in Redis from before it went away expire within VISITOR_PAGE_CACHE_SECONDS.
        _log_unless_unreachable("Could not invalidate cached pages.", error)


def visitor_page(view: Callable) -> Callable:
    """Mark a view whose pages may be the same for every visitor: only their URLs are looked up in the cache."""
    view.visitor_page = True
    return view


def shows_story(response: HttpResponse, story_id: int) -> HttpResponse:
    """Say which story a page shows, so that every hit on its cached copy counts a view of it."""
    response.story_id = story_id
    return response


def _is_visitor_read(request: HttpRequest) -> bool:
    if not (
        settings.VISITOR_PAGE_CACHE_SECONDS > 0
        and request.method in ("GET", "HEAD")
        and settings.SESSION_COOKIE_NAME not in request.COOKIES
        and CookieStorage.cookie_name not in request.COOKIES
    ):
        return False
    return _is_visitor_page_path(request.path_info)


@functools.lru_cache(maxsize=10_000)
def _is_visitor_page_path(path: str) -> bool:
    """Whether the URL belongs to a `visitor_page` view; remembered, as resolving costs more than the rest of a hit."""
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return getattr(match.func, "visitor_page", False)


def _page_key(request: HttpRequest) -> str:
    return "newsreader:pages:" + hashlib.blake2b(request.get_full_path().encode(), digest_size=16).hexdigest()


def _respond(page: CachedPage) -> HttpResponse:
    response = HttpResponse(page.content)
    for name, value in page.headers:
        response[name] = value
    response["Content-Length"] = str(len(page.content))
    response["X-Page-Cache"] = "hit"
    return response


def _storable(request: HttpRequest, response: HttpResponse) -> bool:
    user = getattr(request, "user", None)
    return (
        response.status_code == 200
        and not response.streaming
        and not response.cookies
        and not (user is not None and user.is_authenticated)
    )


# Which story each cached page shows, so that a hit counts the view in the same round trip.
_story_of_page: dict[str, int] = {}
_STORY_OF_PAGE_LIMIT = 10_000


@dataclass(frozen=True)
class _Lookup:
    generation: int | None  # None when the cache is unreachable
    page: CachedPage | None
    view_counted: bool = False

    @property
    def hit(self) -> bool:
        return self.page is not None and self.page.generation == self.generation

    @property
    def result(self) -> str:
        """For /metrics: "hit", "miss" or "unavailable"."""
        return "hit" if self.hit else "miss" if self.generation is not None else "unavailable"


def _fetch(key: str, *, request: HttpRequest) -> _Lookup:
    """The site's generation and the page stored under `key` in one round trip, with the view counted
    in it when the page is known to show a story."""
    client = viewcounts.redis_client()
    if client is None:
        found = cache.get_many([GENERATION_KEY, key])
        return _Lookup(found.get(GENERATION_KEY, 0), found.get(key))
    story_id = _story_of_page.get(key)
    try:
        if story_id is None:
            generation, stored = client.mget([GENERATION_KEY, key])
        else:
            pipeline = client.pipeline(transaction=False)
            pipeline.mget([GENERATION_KEY, key])
            # Counted even when the page turns out stale: the request that renders it anew then finds
            # this reader already counted today.
            viewcounts.queue_view(pipeline, story_id=story_id, reader=viewcounts.visitor_key(request))
            (generation, stored), _ = pipeline.execute()
    except redis.RedisError as error:
        _log_unless_unreachable("The page cache is unavailable.", error)
        return _Lookup(None, None)
    page = CachedPage.from_bytes(stored) if stored else None
    return _Lookup(int(generation or 0), page, view_counted=story_id is not None)


def _count_view(key: str, page: CachedPage, request: HttpRequest) -> None:
    viewcounts.record_view(story_id=page.story_id, reader=viewcounts.visitor_key(request))
    if len(_story_of_page) >= _STORY_OF_PAGE_LIMIT:
        _story_of_page.clear()
    _story_of_page[key] = page.story_id


def _keep(key: str, page: CachedPage) -> None:
    client = viewcounts.redis_client()
    if client is None:
        cache.set(key, page, settings.VISITOR_PAGE_CACHE_SECONDS)
        return
    try:
        client.set(key, page.to_bytes(), ex=settings.VISITOR_PAGE_CACHE_SECONDS)
    except redis.RedisError as error:
        _log_unless_unreachable("Could not keep a page in the cache.", error)


def _log_unless_unreachable(message: str, error: redis.RedisError) -> None:
    """Redis being unreachable is logged once per outage, by the breaker (newsreader/cache.py); other errors here."""
    if not isinstance(error, UNREACHABLE):
        logger.warning(message, exc_info=error)


class VisitorPageCacheMiddleware:
    """Answers visitors from the page cache; keeps the pages of views marked `visitor_page`.

    It sits below the security headers and above sessions: a hit skips the rest of the stack, and the
    headers the skipped middleware had added are replayed from the stored page. With Redis away (or
    left alone by the breaker in newsreader/cache.py after failing), pages are rendered for everyone as
    if the cache were off, and the first request after the breaker's pause turns it back on.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _is_visitor_read(request):
            return self.get_response(request)
        key = _page_key(request)
        found = _fetch(key, request=request)
        metrics.PAGE_CACHE_LOOKUPS.labels(result=found.result).inc()
        if found.hit:
            if found.page.story_id is not None and not found.view_counted:
                _count_view(key, found.page, request)
            return _respond(found.page)

        response = self.get_response(request)
        if found.generation is not None and _storable(request, response):
            headers = tuple((name, value) for name, value in response.items() if name.lower() not in _UNCACHED_HEADERS)
            _keep(key, CachedPage(found.generation, response.content, headers, getattr(response, "story_id", None)))
        return response
