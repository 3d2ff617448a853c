"""The one HTML sanitiser for every piece of user or feed HTML (story bodies, comments, AI output).

Two independent passes enforce one allowlist: bleach cleans first; nh3 (ammonia, maintained)
enforces the same allowlist again, because bleach gets no more security releases. HTML that is already
in the form bleach writes is not parsed by bleach again (see `_bleach_result_without_parsing`).
"""

import functools
import html as html_lib
import re
from html.entities import html5 as _HTML5_ENTITIES

import bleach
import nh3

ALLOWED_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "cite",
        "code",
        "em",
        "h2",
        "h3",
        "h4",
        "hr",
        "i",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "strong",
        "sub",
        "sup",
        "ul",
    }
)
ALLOWED_ATTRIBUTES = {"a": frozenset({"href", "title"}), "abbr": frozenset({"title"})}
ALLOWED_PROTOCOLS = frozenset({"http", "https", "mailto"})

STORY_LINK_REL = "noopener noreferrer"
COMMENT_LINK_REL = "nofollow ugc noopener"

_bleach_cleaner = bleach.Cleaner(
    tags=ALLOWED_TAGS,
    attributes={tag: list(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    protocols=ALLOWED_PROTOCOLS,
    strip=True,
    strip_comments=True,
)

_NH3_CONTENT_DROPPED = frozenset({"script", "style", "template", "noscript", "xmp", "iframe", "noembed"})


def sanitize_html(html: str, *, link_rel: str = STORY_LINK_REL) -> str:
    """Return `html` reduced to the allowlist; every link carries `link_rel`."""
    if not html:
        return ""
    first_pass = _bleach_result_without_parsing(html)
    if first_pass is None:
        first_pass = _bleach_cleaner.clean(html)
    return _nh3_cleaner(link_rel).clean(first_pass)


@functools.cache
def _nh3_cleaner(link_rel: str) -> nh3.Cleaner:
    # A Cleaner is built once per rel: building ammonia's settings took half of each nh3 call.
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(_NH3_CONTENT_DROPPED - ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_PROTOCOLS),
        link_rel=link_rel,
        strip_comments=True,
    )


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment, for search, reading time and summaries."""
    if not html:
        return ""
    # A space before every tag keeps words of adjacent blocks apart once the tags are gone.
    spaced = html.replace("<", " <")
    text = _nh3_text_cleaner.clean(spaced)
    return " ".join(html_lib.unescape(text).split())


_nh3_text_cleaner = nh3.Cleaner(tags=set(), clean_content_tags=set(_NH3_CONTENT_DROPPED))


# The first pass without parsing ---------------------------------------------------------------------
#
# bleach parses with html5lib in pure Python, most of a first import's time. Much HTML, feed bodies and our
# own stored output alike, is already in the form bleach writes: allowlisted tags nested so that the HTML5
# tree builder keeps them as written, allowlisted attributes quoted with '"', text with no character bleach
# escapes or replaces. bleach returns such HTML unchanged (less any rel attribute, which it drops and nh3
# writes again), so recognising it is enough. The grammar below is deliberately narrower than what bleach
# leaves alone; anything outside it is parsed by bleach as before. tests/test_sanitize_first_pass.py checks it
# against bleach on generated and mutated HTML and on the feed corpora.

_INLINE_TAGS = frozenset({"a", "abbr", "b", "cite", "code", "em", "i", "q", "strong", "sub", "sup"})
_TEXT_BLOCKS = frozenset({"p", "h2", "h3", "h4", "pre"})  # text and inline elements only
_FLOW_CONTAINERS = frozenset({"blockquote", "li"})  # like the fragment itself: text, inline and blocks
_LISTS = frozenset({"ul", "ol"})  # list items only
_BLOCKS = _TEXT_BLOCKS | _LISTS | {"blockquote", "hr"}
_VOID_TAGS = frozenset({"br", "hr"})
# Attributes bleach keeps as written; rel it drops, so the first pass's result is the HTML without it.
_KEPT_ATTRIBUTES = {"a": frozenset({"href", "title"}), "abbr": frozenset({"title"})}
_DROPPED_ATTRIBUTES = {"a": frozenset({"rel"})}
# Characters bleach or html5lib change in text and attribute values: C0 and C1 controls (bleach writes "?",
# html5lib turns CR LF into LF and drops NUL) and lone surrogates. Markup characters are checked separately.
_CHANGED_CHARACTERS = "\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff"
_REFERENCE = r"&(?:[a-zA-Z][a-zA-Z0-9]{1,31}|\#[0-9]{1,7}|\#[xX][0-9a-fA-F]{1,6});"
_TOKEN = re.compile(
    rf"""(?P<text>[^<>&{_CHANGED_CHARACTERS}]+)
    |(?P<reference>{_REFERENCE})
    |<(?P<end>/?)(?P<tag>[a-z][a-z0-9]*)(?P<attributes>(?:\x20[a-z]+="[^"<>{_CHANGED_CHARACTERS}]*")*)>""",
    re.VERBOSE,
)
_REFERENCE_SHAPE = re.compile(_REFERENCE)
_ATTRIBUTE = re.compile(r'\x20([a-z]+)="([^"]*)"')
_ATTRIBUTE_REFERENCE = re.compile(r"&[^;]*;?")
# Links bleach keeps as written: an allowed scheme, then URL characters with & written as &amp;. No brackets
# (bleach drops a link its URL parser rejects, as it does "http://[::1").
_KEPT_URL = re.compile(r"(?:https?://|mailto:)(?:[A-Za-z0-9\-._~:/?#@!$'()*+,;=%]|&amp;)*")


def _is_kept_reference(reference: str, *, in_attribute: bool = False) -> bool:
    """True when bleach writes the character reference (with its ";") back unchanged. In attribute values
    it keeps only the named references HTML also accepts without ";" (&amp; but not &mdash;)."""
    if not _REFERENCE_SHAPE.fullmatch(reference):
        return False
    name = reference[1:]
    if not name.startswith("#"):
        return (name[:-1] if in_attribute else name) in _HTML5_ENTITIES
    digits = name[2:-1] if name[1] in "xX" else name[1:-1]
    code_point = int(digits, 16 if name[1] in "xX" else 10)
    return 0x20 <= code_point <= 0x10FFFF and not 0x7F <= code_point <= 0x9F and not 0xD800 <= code_point <= 0xDFFF


def _kept_attributes(tag: str, attributes: str) -> str | None:
    """The attributes bleach would write back, as written; None when it would change or drop any but rel."""
    kept_names = _KEPT_ATTRIBUTES.get(tag, frozenset())
    dropped_names = _DROPPED_ATTRIBUTES.get(tag, frozenset())
    seen = set()
    kept = []
    for match in _ATTRIBUTE.finditer(attributes):
        name, value = match.groups()
        if name in seen or (name not in kept_names and name not in dropped_names):
            return None
        seen.add(name)
        references = _ATTRIBUTE_REFERENCE.findall(value)
        if not all(_is_kept_reference(reference, in_attribute=True) for reference in references):
            return None
        if name == "href" and not _KEPT_URL.fullmatch(value):
            return None
        if name in kept_names:
            kept.append(match.group())
    return "".join(kept)


def _bleach_result_without_parsing(html: str) -> str | None:
    """What bleach would return for `html`, when `html` is in the form bleach writes, else None.

    Nesting rules keep every tag where the HTML5 tree builder puts it: blocks only in the fragment, in list
    items and in quotes; list items only in lists; no block in a paragraph, heading or inline element; no
    inline element inside one of its own kind (so no link in a link); every element closed by its own end
    tag; no line break opening a <pre> (the parser drops it)."""
    stack: list[str] = []
    pieces: list[str] = []
    changed = False
    position, length = 0, len(html)
    while position < length:
        token = _TOKEN.match(html, position)
        if token is None:
            return None
        start, position = position, token.end()
        container = stack[-1] if stack else ""
        if token.lastgroup == "text":
            if container in _LISTS and not token.group("text").isspace():
                return None
            if container == "pre" and html[start - 5 : start] == "<pre>" and token.group("text")[0] == "\n":
                return None
        elif token.lastgroup == "reference":
            if container in _LISTS or not _is_kept_reference(token.group("reference")):
                return None
        else:
            tag = token.group("tag")
            if token.group("end"):
                if container != tag or token.group("attributes"):
                    return None
                stack.pop()
                pieces.append(html[start:position])
                continue
            if not _may_contain(container, tag, stack):
                return None
            written = token.group("attributes")
            attributes = _kept_attributes(tag, written) if written else ""
            if attributes is None:
                return None
            if attributes != written:
                changed = True
                pieces.append(f"<{tag}{attributes}>")
                if tag not in _VOID_TAGS:
                    stack.append(tag)
                continue
            if tag not in _VOID_TAGS:
                stack.append(tag)
        pieces.append(html[start:position])
    if stack:
        return None
    return "".join(pieces) if changed else html


def _may_contain(container: str, tag: str, stack: list[str]) -> bool:
    if tag not in ALLOWED_TAGS:
        return False
    if container in _LISTS:
        return tag == "li"
    if tag == "li":
        return False
    if tag in _INLINE_TAGS:
        return tag not in stack
    if tag == "br":
        return True
    # A block: only where flow content goes (the parser closes an open paragraph or heading before it).
    return tag in _BLOCKS and (container == "" or container in _FLOW_CONTAINERS)
