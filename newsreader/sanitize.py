"""The one HTML sanitiser for every piece of user or feed HTML (story bodies, comments, AI output).

Two independent passes enforce one allowlist: bleach cleans first; nh3 (ammonia, maintained)
enforces the same allowlist again, because bleach gets no more security releases.
"""

import html as html_lib
import re

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
    first_pass = _bleach_cleaner.clean(html)
    return nh3.clean(
        first_pass,
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
    spaced = _TAG_START.sub(" <", html)
    text = nh3.clean(spaced, tags=set(), clean_content_tags=set(_NH3_CONTENT_DROPPED))
    return " ".join(html_lib.unescape(text).split())


_TAG_START = re.compile(r"<")
