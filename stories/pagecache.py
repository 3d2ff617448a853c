"""Whole rendered pages kept for visitors (signed-out readers).

A page is stored with the site's content generation; any change to stories, labels or comments
bumps the generation, so a visitor never gets a page older than the last change. The generation
and the page come back in one cache round trip.
"""

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

GENERATION_KEY = "newsreader:pages:generation"


@dataclass(frozen=True)
class CachedPage:
    generation: int
    content: bytes
    content_type: str
    story_id: int | None


def bump_generation() -> None:
    """Invalidate every cached page: call after any change a visitor could see."""
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:
        cache.set(GENERATION_KEY, 1, None)


def _cacheable_request(request: HttpRequest) -> bool:
    return (
        settings.VISITOR_PAGE_CACHE_SECONDS > 0
        and request.method in ("GET", "HEAD")
        and "messages" not in request.COOKIES
        and not request.user.is_authenticated
    )


def _page_key(request: HttpRequest) -> str:
    return "newsreader:pages:" + hashlib.blake2b(request.get_full_path().encode(), digest_size=16).hexdigest()


def lookup(request: HttpRequest) -> CachedPage | None:
    if not _cacheable_request(request):
        return None
    page_key = _page_key(request)
    found = cache.get_many([GENERATION_KEY, page_key])
    page = found.get(page_key)
    if page is None or page.generation != found.get(GENERATION_KEY, 0):
        return None
    return page


def respond(page: CachedPage) -> HttpResponse:
    response = HttpResponse(page.content, content_type=page.content_type)
    response["X-Page-Cache"] = "hit"
    return response


def store(request: HttpRequest, response: HttpResponse, *, story_id: int | None = None) -> None:
    if not _cacheable_request(request) or response.status_code != 200 or response.cookies or response.streaming:
        return
    generation = cache.get(GENERATION_KEY, 0)
    page = CachedPage(generation, response.content, response["Content-Type"], story_id)
    cache.set(_page_key(request), page, settings.VISITOR_PAGE_CACHE_SECONDS)
