"""Comment text to safe HTML: a small Markdown subset, bare URLs linked, then the site's one sanitiser.

Readers get paragraphs, line breaks, emphasis, links, quotes, lists and inline code; raw HTML is shown
as text. Rendering happens once, when a comment is written, and the result is stored.
"""

import hashlib
import re
import unicodedata

from markdown_it import MarkdownIt

from newsreader.sanitize import COMMENT_LINK_REL, sanitize_html

_MARKDOWN = MarkdownIt("zero", {"html": False, "linkify": True, "breaks": True, "typographer": False}).enable(
    ["paragraph", "blockquote", "list", "emphasis", "link", "backticks", "linkify", "newline", "escape", "entity"]
)
# Bare addresses ("www.example.org", "example.org/path") become links; bare emails stay text.
_MARKDOWN.linkify.set({"fuzzy_email": False})

_LINK_START = re.compile(r"<a\s", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
# Bidi embeddings, overrides and isolates (LRE..RLO, LRI..PDI): one left open reorders whatever the page shows
# after it, so a comment may not carry them. Right-to-left text itself is fine: it is shown isolated.
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Those, plus the characters that take no space (zero-width space, joiners, direction marks, word joiner,
# byte-order mark): invisible in a name or a banned word, so kept out of both.
INVISIBLE_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200b-\u200f\u2060\ufeff]")


def strip_bidi_controls(text: str) -> str:
    return BIDI_CONTROLS.sub("", text)


def strip_invisible_controls(text: str) -> str:
    return INVISIBLE_CONTROLS.sub("", text)


def render_comment(text: str) -> str:
    """The stored HTML of a comment: rendered from the subset, every link `rel="nofollow ugc noopener"`."""
    return sanitize_html(_MARKDOWN.render(strip_bidi_controls(text)), link_rel=COMMENT_LINK_REL)


def count_links(html: str) -> int:
    return len(_LINK_START.findall(html))


def normalise(text: str) -> str:
    """The text as rules compare it: Unicode-normalised, case-folded, runs of whitespace as one space, and
    without invisible characters (so a zero-width space cannot split a banned word)."""
    text = strip_invisible_controls(text)
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def fingerprint(text: str) -> str:
    """Equal for texts that differ only in case, spacing or Unicode form: spots the same text posted twice."""
    return hashlib.sha256(normalise(text).encode()).hexdigest()
