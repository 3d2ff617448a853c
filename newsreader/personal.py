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
"""

import re
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

# What a filler is given: the request (the reader's own, or a visitor's) and the arguments of each
# occurrence of its part on the page, in page order. It answers the HTML of each, escaped.
Filler = Callable[["Fill", list[dict[str, str]]], list[str]]

_fillers: dict[str, Filler] = {}
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


def part(name: str) -> Callable[[Filler], Filler]:
    """Register the filler of the parts called `name`."""
    if not _NAME.match(name):
        raise ValueError(f"A personal part's name is lower-case letters and underscores, not {name!r}.")

    def register(filler: Filler) -> Filler:
        _fillers[name] = filler
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
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        # Rendered for one reader (a page no cache shares): nothing to fill later.
        return conditional_escape(html)
    marker = "".join(f" {key}={value}" for key, value in values.items())
    return mark_safe(f"<!--nr:p {name}{marker}-->{conditional_escape(html)}{_END}")  # noqa: S308 - escaped above


def marked(name: str, html: str = "", **arguments: Any) -> str:
    """A part written by Python code that already knows the visitor's version (`html`, safe to send)."""
    marker = "".join(f" {key}={value}" for key, value in arguments.items())
    return f"<!--nr:p {name}{marker}-->{html}{_END}"


def fill(content: str, request: HttpRequest) -> str:
    """The page with each personal part made for `request`'s reader, and the markers taken out."""
    if "<!--nr:p " not in content:
        return content
    found = list(_MARKED.finditer(content))
    by_name: dict[str, list[int]] = {}
    for index, match in enumerate(found):
        by_name.setdefault(match.group(1), []).append(index)
    filled: list[str] = [""] * len(found)
    context = fill_for(request)
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
    pieces, last = [], 0
    for match, html in zip(found, filled, strict=True):
        pieces.append(content[last : match.start()])
        pieces.append(html)
        last = match.end()
    pieces.append(content[last:])
    return "".join(pieces)


def _arguments(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in text.split())
