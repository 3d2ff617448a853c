"""The parts of a shared page that belong to one reader: filled in per request, never kept in a shared cache.

A page that every reader may get from the page cache (a view marked `stories.pagecache.visitor_page`)
is always rendered as a visitor sees it. Wherever it would differ for a signed-in reader (the
header's name and links, flash messages, the comment form, the reader's own comments awaiting
moderation, what they may do with each comment, follow and save buttons, the label-report form) the
template holds a *personal part*: the visitor's version between two markers,

    <!--nr:p comment_form story=42-->…the visitor's version…<!--/nr:p-->

A signed-in reader gets the same page with each part replaced by theirs
(`stories.pagecache.ReaderPageCacheMiddleware` calls `fill`). Each kind of part has one filler,
registered with `@part("name")`, that makes every occurrence of it on a page at once, so that the
comments' actions on a page of 200 comments cost one query, not 200. The same filler makes the
visitor's version, so a part's markup lives in one place.

A part's arguments are what its filler needs to know which story or comment it is about: numbers and
slugs only, since they are written into the page.

A part registered with `kept=True` is also kept per reader for KEPT_PART_SECONDS (`KeptParts`), in
the process that made it (a cache round trip would cost about what making most parts does), under a
key made of the reader's session and CSRF cookie, the generations of what the page shows and the
reader's own generation, which every form they send bumps: a reader's next page after anything they
do is made afresh, and the rest of the time their parts cost nothing. A part registered with
`kept="content"` does not depend on the page's comments (the comment form, the follow buttons), so a
new comment leaves it kept; one registered with `kept="reader"` is the same on every page (the
header's links), so it is kept per reader whatever the page. What changes by itself (an edit window
closing) may show up to KEPT_PART_SECONDS late; the services decide, so nothing is allowed that
should not be. A kept part that must differ on every page (a form's one-time key) writes FRESH_UUID
where the value goes, and gets a new one each time.

Making a reader's parts for a page they have not seen yet costs no query either, most of the time:
  - what the fillers look up about the page itself (its story, the sections) is the same for every
    reader of the same version of the page (its comments aside), so `Fill.shared` keeps it in the
    process for that version;
  - what they need to know about the reader (their standing, what they follow and saved, the stories
    they commented on) are *reader facts*: small sets registered with `@reader_fact(name)`, made
    together once per reader's generation and kept in the process for READER_FACTS_SECONDS
    (`Fill.facts`). A fact answers "certainly not" cheaply ("this reader never commented on story
    42") and leaves "maybe" to a query, so a fact that lags can cost a query, never a wrong answer;
    and whatever others change about a reader (a moderator's decision, a comment of theirs held)
    bumps their generation (comments.signals), so their next page has their facts anew.
"""

import hashlib
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

# What a filler is given: the request (the reader's own, or a visitor's) and the arguments of each
# occurrence of its part on the page, in page order. It answers the HTML of each, escaped.
Filler = Callable[["Fill", list[dict[str, str]]], list[str]]
# What a reader fact is made from: the signed-in user. It answers a small value that pickles (sets of ids).
FactMaker = Callable[[Any], Any]

_fillers: dict[str, Filler] = {}
Kept = Literal["page", "content", "reader"]
_kept: dict[str, Kept] = {}
_fact_makers: dict[str, FactMaker] = {}
KEPT_PART_SECONDS = 60
READER_FACTS_SECONDS = KEPT_PART_SECONDS
# A reader fact is a set of at most this many ids; a reader with more gets None ("ask the database").
READER_FACT_LIMIT = 2_000
# What one process keeps at most, the least recently used forgotten first: readers' parts (most under
# 2 KB, the label-report form up to about 10 KB), readers' facts, and lookups about versions of pages
# (a story and its labels, a few KB).
KEPT_PARTS_IN_PROCESS = 10_000
READERS_FACTS_IN_PROCESS = 10_000
SHARED_LOOKUPS_IN_PROCESS = 8_000
SHARED_LOOKUP_SECONDS = 600
# Written by a kept part where each copy needs a value of its own (a form's idempotency key).
FRESH_UUID = "00000000-f7e5-4000-8000-000000000000"
# Written by a part made once for many readers (`Fill.shared_render`) where each reader's CSRF token goes.
CSRF_PLACEHOLDER = "nr-csrf-placeholder-8c1f0a7e"
_NAME = re.compile(r"[a-z][a-z_]*\Z")
_ARGUMENT_VALUE = re.compile(r"[\w.-]*\Z", re.ASCII)
_MARKED = re.compile(r"<!--nr:p ([a-z_]+)((?: [a-z_]+=[\w.-]*)*)-->(.*?)<!--/nr:p-->", re.ASCII | re.DOTALL)
_END = "<!--/nr:p-->"


class Fill:
    """One request's filling of its page's parts, with a memo the fillers share (the story, the viewer).

    `content_version` names the version of what the page being filled shows, its comments aside (the
    generations of the story, the site) and `reader_version` the reader's own generation; either is None
    when the cache could not say it, and then nothing is shared or kept beyond this request."""

    def __init__(
        self, request: HttpRequest, *, content_version: str | None = None, reader_version: int | None = None
    ) -> None:
        self.request = request
        self.content_version = content_version
        self.reader_version = reader_version
        self._memo: dict[Any, Any] = {}

    def once(self, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()` the first time `key` is asked for in this request; the same value after."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def shared(self, key: Any, compute: Callable[[], Any]) -> Any:
        """Like `once`, for what is the same for every reader of this version of the page (its story, say):
        kept in this process until what the page shows changes. The value is shared: never change it."""
        if self.content_version is None:
            return self.once(key, compute)
        return _shared_lookups.get((self.content_version, key), compute)

    def shared_render(self, template: str, context: Callable[[], dict[str, Any]], *, key: Any) -> str:
        """`template` rendered with `context()` once for every reader of this version of the page who has the
        same `key` (the few facts about them the part shows: followed or not, saved or not), with this
        reader's CSRF token put in. The template gets no request: only the context, which must hold nothing
        of the reader but what `key` says."""
        html = self.shared(
            ("render", template, key),
            lambda: render_to_string(template, {**context(), "csrf_token": CSRF_PLACEHOLDER}),
        )
        # The template escaped what it showed; a CSRF token is letters and digits.
        return mark_safe(html.replace(CSRF_PLACEHOLDER, self.csrf_token()))  # noqa: S308

    def csrf_token(self) -> str:
        """The reader's CSRF token, masked once for all their forms on the page (masking draws 32 random bytes)."""
        return self.once("csrf_token", lambda: get_token(self.request))

    def facts(self, name: str) -> Any:
        """The signed-in reader's fact `name` (registered with `reader_fact`): all of them are made together
        and kept for the reader's generation; without one, each is made alone, for this request."""
        user = self.request.user
        if self.reader_version is None:
            return self.once((_FACTS, name), lambda: _fact_makers[name](user))
        # The account's creation too: a database may give a deleted account's id to a new one.
        key = (user.pk, getattr(user, "date_joined", None), self.reader_version)
        facts = _kept_facts.get(key, lambda: {name: make(user) for name, make in _fact_makers.items()})
        return facts[name]


_FACTS = object()


class KeptHere:
    """Values this process keeps for `seconds`, the least recently used forgotten first past `size`; safe to
    share between a worker's threads."""

    def __init__(self, size: int, seconds: float) -> None:
        self.size = size
        self.seconds = seconds
        self.kept: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self.lock = threading.Lock()

    def get_many(self, keys: list[Any]) -> dict[Any, Any]:
        now = time.monotonic()
        found = {}
        with self.lock:
            for key in keys:
                entry = self.kept.get(key)
                if entry is not None and entry[0] > now:
                    self.kept.move_to_end(key)
                    found[key] = entry[1]
        return found

    def set_many(self, values: dict[Any, Any]) -> None:
        expires = time.monotonic() + self.seconds
        with self.lock:
            for key, value in values.items():
                self.kept[key] = (expires, value)
                self.kept.move_to_end(key)
            while len(self.kept) > self.size:
                self.kept.popitem(last=False)

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        """The value kept under `key`, or `compute()`'s, kept."""
        found = self.get_many([key])
        if key in found:
            return found[key]
        value = compute()
        self.set_many({key: value})
        return value

    def clear(self) -> None:
        with self.lock:
            self.kept.clear()


_kept_parts = KeptHere(KEPT_PARTS_IN_PROCESS, KEPT_PART_SECONDS)
_kept_facts = KeptHere(READERS_FACTS_IN_PROCESS, READER_FACTS_SECONDS)
_shared_lookups = KeptHere(SHARED_LOOKUPS_IN_PROCESS, SHARED_LOOKUP_SECONDS)


def forget_everything_kept() -> None:
    """Empty what this process keeps (for tests, which start each with empty caches)."""
    for kept in (_kept_parts, _kept_facts, _shared_lookups):
        kept.clear()


def part(name: str, *, kept: bool | Kept = False) -> Callable[[Filler], Filler]:
    """Register the filler of the parts called `name`; with `kept`, what it makes is kept per reader a while:
    for each version of the page (`True` or "page"), of what it shows but its comments ("content"), or for
    every page when it is the same on all ("reader")."""
    if not _NAME.match(name):
        raise ValueError(f"A personal part's name is lower-case letters and underscores, not {name!r}.")

    def register(filler: Filler) -> Filler:
        _fillers[name] = filler
        if kept:
            _kept[name] = "page" if kept is True else kept
        return filler

    return register


def reader_fact(name: str) -> Callable[[FactMaker], FactMaker]:
    """Register what a signed-in reader's fact `name` is made from (see the module's docstring)."""

    def register(maker: FactMaker) -> FactMaker:
        _fact_makers[name] = maker
        return maker

    return register


def limited_ids(values) -> frozenset | None:
    """A reader fact's set from a query of distinct values, or None when it holds more than READER_FACT_LIMIT."""
    found = list(values[: READER_FACT_LIMIT + 1])
    return frozenset(found) if len(found) <= READER_FACT_LIMIT else None


def fill_for(request: HttpRequest) -> Fill:
    """The request's `Fill`, made once, so that parts rendered in one request share what they looked up."""
    current = getattr(request, "_personal_fill", None)
    if current is None:
        current = request._personal_fill = Fill(request)
    return current


def render(request: HttpRequest, name: str, **arguments: Any) -> SafeString:
    """The part `name` as this request's reader sees it; for a visitor, between the markers that let `fill`
    replace it on the shared copy of the page."""
    values = {key: str(value) for key, value in arguments.items()}
    for key, value in values.items():
        if not (_NAME.match(key) and _ARGUMENT_VALUE.match(value)):
            raise ValueError(f"Personal part arguments are names and numbers or slugs, not {key}={value!r}.")
    (html,) = _fillers[name](fill_for(request), [values])
    html = _freshened(str(conditional_escape(html)))
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        # Rendered for one reader (a page no cache shares): nothing to fill later.
        return mark_safe(html)  # noqa: S308 - escaped above
    marker = "".join(f" {key}={value}" for key, value in values.items())
    return mark_safe(f"<!--nr:p {name}{marker}-->{html}{_END}")  # noqa: S308 - escaped above


def marked(name: str, html: str = "", **arguments: Any) -> str:
    """A part written by Python code that already knows the visitor's version (`html`, safe to send)."""
    marker = "".join(f" {key}={value}" for key, value in arguments.items())
    return f"<!--nr:p {name}{marker}-->{html}{_END}"


class KeptParts:
    """A reader's parts kept in this process, under keys that change with what they depend on: `reader`
    (their session and CSRF cookie, which their forms carry), their own generation, and for a part kept
    per page, `page_version` (the generations of what the page shows) or `content_version` (the same but
    its comments')."""

    def __init__(self, *, reader: str, page_version: str, content_version: str, reader_version: int) -> None:
        self.content_version = content_version
        self.reader_version = reader_version
        self._versions = {
            "page": _digest(f"{reader}|{page_version}|{reader_version}"),
            "content": _digest(f"{reader}|{content_version}|{reader_version}"),
            "reader": _digest(f"{reader}|{reader_version}"),
        }

    def key(self, name: str, arguments: str) -> str:
        return f"{self._versions[_kept[name]]}:{name}:{arguments.strip().replace(' ', '&')}"

    def get_many(self, keys: list[str]) -> dict[str, str]:
        return _kept_parts.get_many(keys)

    def set_many(self, parts: dict[str, str]) -> None:
        _kept_parts.set_many(parts)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def fill(content: str, request: HttpRequest, *, kept: KeptParts | None = None) -> str:
    """The page with each personal part made for `request`'s reader, and the markers taken out; parts
    registered as kept are read from `kept` when it has them, and left there when not."""
    if "<!--nr:p " not in content:
        return content
    found = list(_MARKED.finditer(content))
    filled: list[str | None] = [None] * len(found)
    keys: dict[int, str] = {}
    context = fill_for(request)
    if kept is not None:
        context.content_version, context.reader_version = kept.content_version, kept.reader_version
        keys = {i: kept.key(m.group(1), m.group(2)) for i, m in enumerate(found) if m.group(1) in _kept}
        stored = kept.get_many(list(keys.values()))
        for index, key in keys.items():
            filled[index] = stored.get(key)
    by_name: dict[str, list[int]] = {}
    for index, match in enumerate(found):
        if filled[index] is None:
            by_name.setdefault(match.group(1), []).append(index)
    made: dict[str, str] = {}
    for name, indexes in by_name.items():
        filler = _fillers.get(name)
        if filler is None:
            # A page kept by an older release: its visitor's version is the safe answer.
            for index in indexes:
                filled[index] = found[index].group(3)
            continue
        arguments = [_arguments(found[index].group(2)) for index in indexes]
        for index, html in zip(indexes, filler(context, arguments), strict=True):
            filled[index] = str(conditional_escape(html))
            if index in keys:
                made[keys[index]] = filled[index]
    if made:
        kept.set_many(made)
    pieces, last = [], 0
    for match, html in zip(found, filled, strict=True):
        pieces.append(content[last : match.start()])
        pieces.append(_freshened(html))
        last = match.end()
    pieces.append(content[last:])
    return "".join(pieces)


def _freshened(html: str) -> str:
    """Each FRESH_UUID a part wrote, replaced by a value of its own."""
    if FRESH_UUID not in html:
        return html
    return re.sub(FRESH_UUID, lambda _: str(uuid.uuid4()), html)


def _arguments(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in text.split())
