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

A part registered with `kept=True` is also kept per reader for KEPT_PART_SECONDS (`KeptParts`), under
a key made of the reader's session and CSRF cookie, the generations of what the page shows and the
reader's own generation, which every form they send bumps: a reader's next page after anything they
do is made afresh, and the rest of the time their parts cost one cache read. What changes by itself
(an edit window closing, a moderator's decision about them) may show up to KEPT_PART_SECONDS late;
the services decide, so nothing is allowed that should not be. A kept part that must differ on every
page (a form's one-time key) writes FRESH_UUID where the value goes, and gets a new one each time.
"""

import hashlib
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

# What a filler is given: the request (the reader's own, or a visitor's) and the arguments of each
# occurrence of its part on the page, in page order. It answers the HTML of each, escaped.
Filler = Callable[["Fill", list[dict[str, str]]], list[str]]

_fillers: dict[str, Filler] = {}
_kept: set[str] = set()
KEPT_PART_SECONDS = 60
KEPT_PART_PREFIX = "newsreader:parts:"
# Written by a kept part where each copy needs a value of its own (a form's idempotency key).
FRESH_UUID = "00000000-f7e5-4000-8000-000000000000"
_NAME = re.compile(r"[a-z][a-z_]*\Z")
_ARGUMENT_VALUE = re.compile(r"[\w.-]*\Z", re.ASCII)
_MARKED = re.compile(r"<!--nr:p ([a-z_]+)((?: [a-z_]+=[\w.-]*)*)-->(.*?)<!--/nr:p-->", re.ASCII | re.DOTALL)
_END = "<!--/nr:p-->"


class Fill:
    """One request's filling of its page's parts, with a memo the fillers share (the story, the viewer)."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self._memo: dict[Any, Any] = {}

    def once(self, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()` the first time `key` is asked for in this request; the same value after."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


def part(name: str, *, kept: bool = False) -> Callable[[Filler], Filler]:
    """Register the filler of the parts called `name`; with `kept`, what it makes is kept per reader a while."""
    if not _NAME.match(name):
        raise ValueError(f"A personal part's name is lower-case letters and underscores, not {name!r}.")

    def register(filler: Filler) -> Filler:
        _fillers[name] = filler
        if kept:
            _kept.add(name)
        return filler

    return register


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
    """A reader's parts kept in the cache, under keys that change with `version`: the reader's session and
    CSRF cookie, the generations of what the page shows, and the reader's own generation."""

    def __init__(self, version: str) -> None:
        self.version = hashlib.blake2b(version.encode(), digest_size=16).hexdigest()

    def key(self, name: str, arguments: str) -> str:
        return f"{KEPT_PART_PREFIX}{self.version}:{name}:{arguments.strip().replace(' ', '&')}"

    def get_many(self, keys: list[str]) -> dict[str, str]:
        return cache.get_many(keys)

    def set_many(self, parts: dict[str, str]) -> None:
        cache.set_many(parts, KEPT_PART_SECONDS)


def fill(content: str, request: HttpRequest, *, kept: KeptParts | None = None) -> str:
    """The page with each personal part made for `request`'s reader, and the markers taken out; parts
    registered as kept are read from `kept` when it has them (one cache read), and left there when not."""
    if "<!--nr:p " not in content:
        return content
    found = list(_MARKED.finditer(content))
    filled: list[str | None] = [None] * len(found)
    keys: dict[int, str] = {}
    if kept is not None:
        keys = {i: kept.key(m.group(1), m.group(2)) for i, m in enumerate(found) if m.group(1) in _kept}
        stored = kept.get_many(list(keys.values())) if keys else {}
        for index, key in keys.items():
            filled[index] = stored.get(key)
    by_name: dict[str, list[int]] = {}
    for index, match in enumerate(found):
        if filled[index] is None:
            by_name.setdefault(match.group(1), []).append(index)
    context = fill_for(request)
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
