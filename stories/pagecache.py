"""Whole rendered pages, kept once for every reader: answered to visitors before most of the middleware,
and to signed-in readers with their personal parts filled in (newsreader/personal.py).

A view opts in with the `visitor_page` decorator. `VisitorPageCacheMiddleware` stores its pages on
their way out, with the headers the middleware below it added, and answers the next
visitor's request for the same URL from the cache without running the session, authentication,
CSRF or view code again. A visitor is a request without a session cookie: with no session nobody is
signed in, and such a request cannot carry anything a page depends on besides its URL.
`ReaderPageCacheMiddleware` gives signed-in readers the same entries: such a page is always rendered
as a visitor's, and what is theirs on it is filled in per request, never stored.

A page is stored with the generations of what it shows, read before it was rendered: every page
depends on the site (sections, tags, regions, sources); the lists depend on the stories they could
show; a story page, its thread and its comments' pages on that story (and on the stories shown
beside it as other coverage). A change bumps only the generations it touches: a comment, its
story's; an imported or relabelled story, its own and the lists'. A visitor never gets a page older
than the last change to what it shows, except for counts on the lists (comments, views), which may
lag by up to LIST_PAGE_CACHE_SECONDS, and views on a story page, by up to VISITOR_PAGE_CACHE_SECONDS;
and while one request renders a list anew after its stories changed, the others meanwhile get its
previous copy (for RENEWING_MILLISECONDS at most) rather than all rendering it at once. A change made
in a transaction invalidates once it commits.
The generations and the page come back in one cache round trip once a process has seen the page, and a
visitor's hit on a page the process has copied needs no round trip at all (stories/localpages.py).
"""

import contextlib
import copy
import functools
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils import timezone
from django.utils.cache import patch_vary_headers

from newsreader import authentication, metrics, personal
from newsreader.cache import UNREACHABLE

from . import localpages, viewcounts

if TYPE_CHECKING:
    from datetime import datetime

    from .models import Story

logger = logging.getLogger(__name__)

GENERATION_KEY_PREFIX = "newsreader:pages:generation:"
SITE, LISTS = "site", "lists"
# What a page depends on until it says otherwise: the views that do not name a story are lists.
DEFAULT_SCOPES = (SITE, LISTS)
# While one request renders a list anew after stories changed, the others asking for it are answered
# its previous copy, for this long at most: the copy is one render behind the stories.
RENEWING_MILLISECONDS = 2_000
RENEWING_SUFFIX = ":renewing"
# Headers that belong to one response, never to a copy served later.
_UNCACHED_HEADERS = frozenset({"content-length", "date", "set-cookie", "x-page-cache"})


def story_scope(slug: str) -> str:
    return f"story:{slug}"


def discussion_scope(slug: str) -> str:
    """A story's comments: apart from the story itself, so what a page shows besides them (a reader's
    comment form, their follow buttons) need not be made anew with every comment."""
    return f"discussion:{slug}"


def story_scopes(slug: str) -> tuple[str, ...]:
    """What every page about a story shows: the site's labels, the story and its discussion."""
    return (SITE, story_scope(slug), discussion_scope(slug))


def reader_scope(user_id: int) -> str:
    """What one signed-in reader did: bumped by every form they send, so their kept parts are made anew."""
    return f"reader:{user_id}"


@dataclass(frozen=True)
class CachedPage:
    # The generation of each scope the page depends on, read before it was rendered.
    generations: dict[str, int]
    content: bytes
    headers: tuple[tuple[str, str], ...]
    # The story the page shows, whose view is counted on every hit.
    story_id: int | None
    # When the kept page expires (seconds since the epoch): copies of it (stories.localpages) expire with it.
    expires_at: float | None = None

    def to_bytes(self) -> bytes:
        """One line of JSON for everything but the content, then the content as it is."""
        meta = {
            "generations": self.generations,
            "headers": self.headers,
            "story_id": self.story_id,
            "expires_at": self.expires_at,
        }
        return json.dumps(meta).encode() + b"\n" + self.content

    @classmethod
    def from_bytes(cls, data: bytes) -> "CachedPage":
        meta, _, content = data.partition(b"\n")
        fields = json.loads(meta)
        headers = tuple((name, value) for name, value in fields["headers"])
        return cls(fields["generations"], content, headers, fields["story_id"], fields.get("expires_at"))

    def is_current(self, generations: dict[str, int]) -> bool:
        return all(generations.get(scope) == generation for scope, generation in self.generations.items())


def bump_generation() -> None:
    """Invalidate every cached page: call after a change every page could show (a section's name, say)."""
    _bump([SITE])


def stories_changed(*slugs: str) -> None:
    """Invalidate the lists and the pages of these stories: a story was added, changed or removed."""
    _bump([LISTS, *dict.fromkeys(story_scope(slug) for slug in slugs if slug)])


def reader_did_something(user_id: int) -> None:
    """Make this reader's kept personal parts anew (newsreader/personal.py): they sent a form."""
    _bump([reader_scope(user_id)])


def story_discussion_changed(slug: str) -> None:
    """Invalidate one story's page, thread and comment pages (a comment came, went or changed); the lists'
    comment counts catch up within LIST_PAGE_CACHE_SECONDS."""
    _bump([discussion_scope(slug)])


def current_generations(scopes: tuple[str, ...], *, count_view: tuple[int, str] | None = None) -> dict[str, int] | None:
    """The generation of each scope, in one round trip, with a view (story id, reader) counted in it when
    `count_view` says so; None when the cache is unreachable."""
    keys = [GENERATION_KEY_PREFIX + scope for scope in scopes]
    client = viewcounts.redis_client()
    if client is None:
        found = cache.get_many(keys)
        if count_view is not None:
            viewcounts.record_view(story_id=count_view[0], reader=count_view[1])
        return {scope: found.get(key, 0) for scope, key in zip(scopes, keys, strict=True)}
    try:
        if count_view is None:
            values = client.mget(keys)
        else:
            pipeline = client.pipeline(transaction=False)
            pipeline.mget(keys)
            viewcounts.queue_view(pipeline, story_id=count_view[0], reader=count_view[1])
            values, _ = pipeline.execute()
    except redis.RedisError as error:
        _log_unless_unreachable("The page cache is unavailable.", error)
        return None
    return {scope: int(value or 0) for scope, value in zip(scopes, values, strict=True)}


_waiting_for_commit = threading.local()


def in_transaction() -> bool:
    return transaction.get_connection().in_atomic_block


def _bump(scopes: list[str]) -> None:
    """Invalidate these scopes; inside a transaction, once it commits. Bumped before, a page rendered from the
    rows as they were before the commit would be kept under the new generation, and shown until the next
    change. The scopes a transaction bumps are bumped together, once each."""
    if not in_transaction():
        _increment(scopes)
        return
    waiting = getattr(_waiting_for_commit, "scopes", None)
    if waiting is None:
        waiting = _waiting_for_commit.scopes = {}
    waiting.update(dict.fromkeys(scopes))
    # Registered each time, as a rolled-back savepoint drops the callbacks made inside it; the first to run
    # bumps everything waiting.
    transaction.on_commit(_bump_waiting)


def _bump_waiting() -> None:
    waiting = getattr(_waiting_for_commit, "scopes", None)
    if waiting:
        _waiting_for_commit.scopes = {}
        _increment(list(waiting))


@contextlib.contextmanager
def bumps_together() -> Iterator[None]:
    """Bump what the block changes in one round trip at its end: a form sent changes a story's discussion,
    its author's parts and more, each once its transaction commits. Pages rendered meanwhile from the
    changed rows are kept under the old generations, and made anew after the bump: never the reverse."""
    if getattr(_bumped_together, "scopes", None) is not None:
        yield
        return
    _bumped_together.scopes = {}
    try:
        yield
    finally:
        scopes, _bumped_together.scopes = _bumped_together.scopes, None
        if scopes:
            _increment(list(scopes))


_bumped_together = threading.local()


def _increment(scopes: list[str]) -> None:
    """Bump the generations of these scopes, and tell every process so, which drops its copies of the pages
    that depend on them (stories.localpages)."""
    together = getattr(_bumped_together, "scopes", None)
    if together is not None:
        together.update(dict.fromkeys(scopes))
        return
    keys = [GENERATION_KEY_PREFIX + scope for scope in scopes]
    client = viewcounts.redis_client()
    if client is None:
        for key in keys:
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, None)
        return
    try:
        pipeline = client.pipeline(transaction=False)
        for key in keys:
            pipeline.incr(key)
        localpages.queue_announcement(pipeline, scopes)
        pipeline.execute()
    except redis.RedisError as error:
        # Pages kept in Redis from before it went away expire within VISITOR_PAGE_CACHE_SECONDS.
        _log_unless_unreachable("Could not invalidate cached pages.", error)
    finally:
        # After the bump, so that no lookup in this process copies the page again in between; before the
        # announcement comes back, so that this process's next request already sees the change.
        localpages.heard(scopes)


def visitor_page(view: Callable | None = None, *, story_slug: str | None = None) -> Callable:
    """Mark a view whose pages may be the same for every visitor: only their URLs are looked up in the cache.

    `story_slug` names the URL argument holding the slug of the one story the page is about, so its
    cached copy is checked against that story's generation from the first lookup on."""

    def mark(view: Callable) -> Callable:
        view.visitor_page = _VisitorPage(story_slug)
        return view

    return mark(view) if view is not None else mark


@dataclass(frozen=True)
class _VisitorPage:
    story_slug: str | None


def shows_story(response: HttpResponse, story: "Story", *, beside: tuple["Story", ...] = ()) -> HttpResponse:
    """Say which story a page shows, so that every hit on its cached copy counts a view of it, and that
    the page changes with that story and with the stories shown `beside` it, not with the lists."""
    response.story_id = story.pk
    return about_story(response, story, beside=beside)


def about_story(response: HttpResponse, story: "Story", *, beside: tuple["Story", ...] = ()) -> HttpResponse:
    """Say that a page (a thread, a comment's page) changes with this story and its discussion only."""
    others = tuple(story_scope(other.slug) for other in beside if other is not None)
    response.page_scopes = (*story_scopes(story.slug), *others)
    return response


def _visitor_read_scopes(request: HttpRequest) -> tuple[str, ...] | None:
    """For a visitor's read of a `visitor_page` view, what the page is expected to depend on; else None."""
    if not (
        settings.VISITOR_PAGE_CACHE_SECONDS > 0
        and request.method in ("GET", "HEAD")
        and settings.SESSION_COOKIE_NAME not in request.COOKIES
        and CookieStorage.cookie_name not in request.COOKIES
    ):
        return None
    return _expected_scopes(request.path_info)


@functools.lru_cache(maxsize=10_000)
def _expected_scopes(path: str) -> tuple[str, ...] | None:
    """Remembered per URL, as resolving costs more than the rest of a hit."""
    try:
        match = resolve(path)
    except Resolver404:
        return None
    page = getattr(match.func, "visitor_page", None)
    if page is None:
        return None
    if page.story_slug and page.story_slug in match.kwargs:
        return story_scopes(match.kwargs[page.story_slug])
    return DEFAULT_SCOPES


def _page_key(request: HttpRequest) -> str:
    # v2: a story's discussion became a scope of its own, which pages kept before did not name.
    return "newsreader:pages:v2:" + hashlib.blake2b(request.get_full_path().encode(), digest_size=16).hexdigest()


def _respond(page: CachedPage, *, result: str = "hit") -> HttpResponse:
    response = HttpResponse(page.content)
    for name, value in page.headers:
        response[name] = value
    response["Content-Length"] = str(len(page.content))
    response["X-Page-Cache"] = result
    return response


def changes_at(response: HttpResponse, moment: "datetime | None") -> HttpResponse:
    """Say that the page will change by itself at `moment` (its comments closing, say), so that no copy of
    it is kept past then. A moment already past changes nothing: the page was rendered after it."""
    if moment is not None:
        earliest = getattr(response, "page_changes_at", None)
        response.page_changes_at = min(moment, earliest) if earliest is not None else moment
    return response


def _storable(request: HttpRequest, response: HttpResponse) -> bool:
    user = getattr(request, "user", None)
    return (
        response.status_code == 200
        and not response.streaming
        and not response.cookies
        and not (user is not None and user.is_authenticated)
    )


@dataclass(frozen=True)
class _Known:
    """What this process learnt of a cached page: what it depends on and which story it shows."""

    scopes: tuple[str, ...]
    story_id: int | None


# Learnt from the pages themselves, so that the next lookup reads the right generations (and counts
# the view) in the same round trip as the page.
_known_pages: dict[str, _Known] = {}
_KNOWN_PAGES_LIMIT = 10_000


@dataclass(frozen=True)
class _Lookup:
    generations: dict[str, int] | None  # None when the cache is unreachable
    page: CachedPage | None
    view_counted: bool = False

    @property
    def hit(self) -> bool:
        return self.page is not None and self.page.is_current(self.generations)

    @property
    def behind_the_lists_only(self) -> bool:
        """Whether the page found is a list that only stories added or changed since have made out of date."""
        if self.hit or self.page is None or LISTS not in self.page.generations:
            return False
        return all(
            self.generations.get(scope) == kept for scope, kept in self.page.generations.items() if scope != LISTS
        )

    @property
    def result(self) -> str:
        """For /metrics: "hit", "miss" or "unavailable"."""
        return "hit" if self.hit else "miss" if self.generations is not None else "unavailable"


def _fetch(
    key: str, *, expected_scopes: tuple[str, ...], reader: Callable[[], str], also: tuple[str, ...] = ()
) -> _Lookup:
    """The generations a page depends on (and those of the scopes `also` names) and the page stored under
    `key` in one round trip, with the view counted in it when the page is known to show a story."""
    known = _known_pages.get(key)
    scopes = (*(known.scopes if known else expected_scopes), *also)
    generation_keys = [GENERATION_KEY_PREFIX + scope for scope in scopes]
    client = viewcounts.redis_client()
    if client is None:
        found = cache.get_many([*generation_keys, key])
        generations = {scope: found.get(GENERATION_KEY_PREFIX + scope, 0) for scope in scopes}
        return _Lookup(generations, found.get(key))
    story_id = known.story_id if known else None
    try:
        if story_id is None:
            *values, stored = client.mget([*generation_keys, key])
        else:
            pipeline = client.pipeline(transaction=False)
            pipeline.mget([*generation_keys, key])
            # Counted even when the page turns out stale: the request that renders it anew then finds
            # this reader already counted today.
            viewcounts.queue_view(pipeline, story_id=story_id, reader=reader())
            (*values, stored), _ = pipeline.execute()
    except redis.RedisError as error:
        _log_unless_unreachable("The page cache is unavailable.", error)
        return _Lookup(None, None)
    generations = {scope: int(value or 0) for scope, value in zip(scopes, values, strict=True)}
    page = CachedPage.from_bytes(stored) if stored else None
    if page is not None and not page.generations.keys() <= generations.keys():
        # The page depends on more than this process knew: learn it, and treat this lookup as a miss.
        _remember(key, tuple(page.generations), page.story_id)
        return _Lookup(generations, None)
    return _Lookup(generations, page, view_counted=story_id is not None)


def _renewed_elsewhere(key: str, found: _Lookup) -> bool:
    """Whether another request is already rendering this out-of-date list anew, so that this one may be
    answered its previous copy; when none is, this request takes the rendering on (`_renewed`).

    An import changes the lists once per story it stores, labels or illustrates: without this, every
    request for a list in the meantime rendered it again, all at once."""
    if not found.behind_the_lists_only:
        return False
    client = viewcounts.redis_client()
    if client is None:
        return False
    try:
        return not client.set(key + RENEWING_SUFFIX, 1, nx=True, px=RENEWING_MILLISECONDS)
    except redis.RedisError as error:
        _log_unless_unreachable("The page cache is unavailable.", error)
        return False


def _renewed(key: str) -> None:
    """The list this request took on rendering is done: the next request for it renders it, or finds it."""
    client = viewcounts.redis_client()
    if client is None:
        return
    try:
        client.delete(key + RENEWING_SUFFIX)
    except redis.RedisError as error:
        _log_unless_unreachable("The page cache is unavailable.", error)


def _remember(key: str, scopes: tuple[str, ...], story_id: int | None) -> None:
    if len(_known_pages) >= _KNOWN_PAGES_LIMIT:
        _known_pages.clear()
    _known_pages[key] = _Known(scopes, story_id)


def _count_view(key: str, page: CachedPage, reader: Callable[[], str]) -> None:
    viewcounts.record_view(story_id=page.story_id, reader=reader())
    _remember(key, tuple(page.generations), page.story_id)


def _keep(key: str, page: CachedPage, *, seconds: int) -> bool:
    client = viewcounts.redis_client()
    if client is None:
        return cache.set(key, page, seconds) is not False
    try:
        client.set(key, page.to_bytes(), ex=seconds)
    except redis.RedisError as error:
        _log_unless_unreachable("Could not keep a page in the cache.", error)
        return False
    return True


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
        expected_scopes = _visitor_read_scopes(request)
        if expected_scopes is None:
            return self.get_response(request)
        key = _page_key(request)
        # Who is reading matters only on a page that shows a story, where it counts a view.
        reader = functools.partial(viewcounts.visitor_key, request)
        copied = localpages.page(key)
        if copied is not None:
            metrics.PAGE_CACHE_LOOKUPS.labels(result="hit").inc()
            if copied.story_id is not None:
                localpages.count_view(copied.story_id, reader())
            return _respond(copied)
        mark = localpages.mark()
        found = _fetch(key, expected_scopes=expected_scopes, reader=reader)
        metrics.PAGE_CACHE_LOOKUPS.labels(result=found.result).inc()
        if found.hit:
            if found.page.story_id is not None and not found.view_counted:
                _count_view(key, found.page, reader)
            localpages.keep(key, found.page, mark=mark)
            return _respond(found.page)
        if _renewed_elsewhere(key, found):
            return _respond(found.page, result="stale")

        try:
            response = self.get_response(request)
            if found.generations is not None and _storable(request, response):
                kept = _store(key, response, found.generations)
                if kept is not None:
                    localpages.keep(key, kept, mark=mark)
        finally:
            if found.behind_the_lists_only:
                _renewed(key)
        return response


class ReaderPageCacheMiddleware:
    """Gives signed-in readers the pages visitors get, from the same cache entries, with their personal
    parts filled in (newsreader/personal.py).

    It sits below authentication and messages. A signed-in reader's read of a `visitor_page` view is
    answered from the cached page when it is current; otherwise the view runs for a copy of the request
    that has no user, session, cookies or messages, exactly as for a visitor, and its page is kept for
    everyone. Then each personal part is made for this reader. The view never sees the reader, so
    nothing of theirs can enter the shared page; their parts exist only in the answer to them.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
            # Whatever a reader sends (a comment, a follow, a report) may change their parts: made anew. The
            # session says who they are without loading them (a form may sign them out, too).
            user_id = request.session.get(SESSION_KEY)
            with bumps_together():
                response = self.get_response(request)
                if user_id is not None:
                    reader_did_something(user_id)
            return response
        expected_scopes = _expected_scopes(request.path_info) if request.method in ("GET", "HEAD") else None
        # Who the session says is reading, before their account is loaded: their generation comes with the
        # page, and with it the account this process kept for them (newsreader/authentication.py).
        user_id = request.session.get(SESSION_KEY) if expected_scopes is not None else None
        if user_id is None:
            return self.get_response(request)
        reader = functools.cache(functools.partial(viewcounts.user_key, user_id))
        key = _page_key(request)
        found = _Lookup(None, None)
        if settings.VISITOR_PAGE_CACHE_SECONDS > 0:
            found = _fetch(key, expected_scopes=expected_scopes, reader=reader, also=(reader_scope(user_id),))
            metrics.PAGE_CACHE_LOOKUPS.labels(result=found.result).inc()
            if found.generations is not None:
                authentication.use_reader_generation(request, user_id, found.generations[reader_scope(user_id)])
        if not request.user.is_authenticated:
            # The session names an account it no longer stands for (a new password, a closed account).
            return self.get_response(request)
        if found.hit:
            if found.page.story_id is not None and not found.view_counted:
                _count_view(key, found.page, reader)
            return _personalised(_respond(found.page), request, _parts_version(found, found.page.generations))
        if _renewed_elsewhere(key, found):
            stale = _respond(found.page, result="stale")
            return _personalised(stale, request, _parts_version(found, found.page.generations))
        try:
            return self._shared_page_made_anew(request, key, found, reader)
        finally:
            if found.behind_the_lists_only:
                _renewed(key)

    def _shared_page_made_anew(self, request: HttpRequest, key: str, found: _Lookup, reader: Callable) -> HttpResponse:
        """The page rendered for a visitor's copy of the request, kept for everyone, with the reader's parts."""
        visitor = _as_visitor(request, reader=reader())
        response = self.get_response(visitor)
        if response.status_code == 404:
            # What visitors may not see may still be this reader's: their own comment awaiting moderation.
            return self.get_response(request)
        if visitor.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
            # The page used a CSRF token outside its personal parts: it cannot be shared, and the token it
            # holds is not this reader's. Render it for them instead.
            logger.warning("A visitor_page view used a CSRF token outside a personal part: %s", request.path)
            return self.get_response(request)
        if found.generations is not None and _storable(visitor, response):
            # The session middleware, above this one, would have said so for a visitor's copy.
            patch_vary_headers(response, ("Cookie",))
            _store(key, response, found.generations)
        scopes = getattr(response, "page_scopes", DEFAULT_SCOPES)
        return _personalised(response, request, _parts_version(found, dict.fromkeys(scopes)))


def _store(key: str, response: HttpResponse, generations: dict[str, int]) -> CachedPage | None:
    """Keep a visitor's page with the generations read before it was rendered; returns what was kept."""
    scopes = getattr(response, "page_scopes", DEFAULT_SCOPES)
    story_id = getattr(response, "story_id", None)
    if not set(scopes) <= generations.keys():
        # Generations read after rendering could already include a change the page missed: keep the
        # page next time, when this lookup reads them first.
        _remember(key, scopes, story_id)
        return None
    seconds = settings.VISITOR_PAGE_CACHE_SECONDS
    if LISTS in scopes:
        seconds = min(seconds, settings.LIST_PAGE_CACHE_SECONDS)
    changes = getattr(response, "page_changes_at", None)
    if changes is not None and changes > timezone.now():
        seconds = min(seconds, math.ceil((changes - timezone.now()).total_seconds()))
    headers = tuple((name, value) for name, value in response.items() if name.lower() not in _UNCACHED_HEADERS)
    kept = {scope: generations[scope] for scope in scopes}
    page = CachedPage(kept, response.content, headers, story_id, expires_at=time.time() + seconds)
    return page if _keep(key, page, seconds=seconds) else None


def _as_visitor(request: HttpRequest, *, reader: str) -> HttpRequest:
    """A copy of a signed-in reader's request as a visitor would send it: same URL and headers, no cookies."""
    visitor = copy.copy(request)
    visitor.META = {name: value for name, value in request.META.items() if name not in _READER_META}
    visitor.COOKIES = {}
    visitor.user = AnonymousUser()
    visitor.auser = _anonymous_user
    visitor.session = import_module(settings.SESSION_ENGINE).SessionStore()
    # The reader's view of a story counts as theirs, once a day, however the page was made.
    visitor.reader_pseudonym = reader
    for private in ("_messages", "_personal_fill"):
        visitor.__dict__.pop(private, None)
    return visitor


_READER_META = frozenset({"HTTP_COOKIE", "CSRF_COOKIE", "CSRF_COOKIE_NEEDS_UPDATE"})


async def _anonymous_user() -> AnonymousUser:
    return AnonymousUser()


def _parts_version(found: _Lookup, page_scopes: dict[str, object]) -> dict[str, int] | None:
    """The generations a reader's kept parts on this page go with: the page's own and the reader's; None
    when the cache is away or did not say them all."""
    if found.generations is None:
        return None
    wanted = [*page_scopes, *(scope for scope in found.generations if scope.startswith("reader:"))]
    if not set(wanted) <= found.generations.keys():
        return None
    return {scope: found.generations[scope] for scope in wanted}


def _personalised(response: HttpResponse, request: HttpRequest, version: dict[str, int] | None) -> HttpResponse:
    """The shared page with this reader's personal parts in it; with `version` (the generations of what
    the page shows and of the reader), the parts they had on this page since then come from the cache."""
    if response.streaming or not response.get("Content-Type", "").startswith("text/html"):
        return response
    kept = None
    if version is not None:
        session = request.session.session_key or ""
        csrf_secret = request.COOKIES.get(settings.CSRF_COOKIE_NAME, "")
        reader_generation = version.pop(reader_scope(request.user.pk))
        content = {scope: generation for scope, generation in version.items() if not scope.startswith("discussion:")}
        kept = personal.KeptParts(
            reader=f"{session}|{csrf_secret}",
            page_version=str(sorted(version.items())),
            content_version=str(sorted(content.items())),
            reader_version=reader_generation,
        )
    charset = response.charset
    response.content = personal.fill(response.content.decode(charset), request, kept=kept).encode(charset)
    response["Content-Length"] = str(len(response.content))
    return response
