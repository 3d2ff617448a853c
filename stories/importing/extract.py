"""Full text of an article page: its main text as simple HTML, with title, author, date and picture.

Works on a page we already fetched (through the guarded fetcher); nothing here reaches the network.
"""

import copy
import html as html_lib
import re
import urllib.parse
from dataclasses import dataclass
from datetime import date

from lxml import html as lxml_html
from trafilatura import bare_extraction
from trafilatura.htmlprocessing import convert_to_html
from trafilatura.utils import load_html

from newsreader.sanitize import html_to_text

LINK_SCHEMES = frozenset({"http", "https", "mailto"})
IMAGE_SCHEMES = frozenset({"http", "https"})
IMAGE_ALT_PROPERTIES = ("og:image:alt", "twitter:image:alt")
MIN_WORDS = 20  # less is a cookie notice or a link list, not an article
# Chinese and Japanese (Han and kana) and the scripts of Thai, Lao, Khmer and Burmese put no spaces between
# words, so splitting on spaces sees a paragraph as one word. Their characters are counted instead, at the
# average length of a word: about two characters in Chinese and Japanese, about three letters (vowel and
# tone marks not counted) in the Southeast Asian scripts. Korean puts spaces between words: counted as split.
CHARACTERS_PER_WORD = 2
SOUTHEAST_ASIAN_LETTERS_PER_WORD = 3
_HAN_AND_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]")
_SOUTHEAST_ASIAN = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff]+")
HEADING_LEVELS = {"h1": "h2", "h2": "h2", "h3": "h3", "h4": "h4", "h5": "h4", "h6": "h4"}


@dataclass(frozen=True, slots=True)
class ExtractedArticle:
    """The main content of a page. ``body_html`` is paragraphs, headings, lists, quotes and links,
    not yet sanitised; ``text`` is its plain text."""

    body_html: str
    text: str
    title: str = ""
    author: str = ""
    published: date | None = None
    image_url: str = ""
    image_alt: str = ""


def extract_article(*, html: bytes | str, url: str) -> ExtractedArticle | None:
    """Extract the article in `html`, the page found at `url`; None when no main text can be found."""
    if not html:
        return None
    tree = load_html(html)
    if tree is None:
        return None
    image_alt = _meta_content(tree, IMAGE_ALT_PROPERTIES)
    document = bare_extraction(
        tree,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_formatting=True,
        include_links=True,
    )
    if document is None or document.body is None:
        return None
    body_html = _body_html(document.body, base=url, title=document.title or "")
    text = html_to_text(body_html)
    if word_count(text) < MIN_WORDS:
        return None
    return ExtractedArticle(
        body_html=body_html,
        text=text,
        title=(document.title or "").strip(),
        author=(document.author or "").strip(),
        published=_date(document.date),
        image_url=_absolute(document.image or "", base=url, schemes=IMAGE_SCHEMES),
        image_alt=image_alt if document.image else "",
    )


def word_count(text: str) -> float:
    """About how many words `text` holds, in any script: words between spaces, plus Han and kana
    characters by CHARACTERS_PER_WORD and Thai, Lao, Khmer and Burmese letters by
    SOUTHEAST_ASIAN_LETTERS_PER_WORD (those scripts write words without spaces between them)."""
    han_and_kana = len(_HAN_AND_KANA.findall(text))
    # Letters only: the vowel and tone marks written above and below them are not letters of their own.
    southeast_asian = sum(character.isalpha() for run in _SOUTHEAST_ASIAN.findall(text) for character in run)
    spaced = _SOUTHEAST_ASIAN.sub(" ", _HAN_AND_KANA.sub(" ", text))
    return (
        len(re.findall(r"\w+", spaced))
        + han_and_kana / CHARACTERS_PER_WORD
        + southeast_asian / SOUTHEAST_ASIAN_LETTERS_PER_WORD
    )


def choose_body(feed_html: str, extracted: ExtractedArticle | None) -> str:
    """The body to keep: the extracted article when it has more text than the feed gave, else the
    feed's own HTML (extraction failed, or found only a teaser or the wrong block)."""
    if extracted is None:
        return feed_html
    if len(extracted.text) > len(html_to_text(feed_html or "")):
        return extracted.body_html
    return feed_html


def _body_html(body, *, base: str, title: str) -> str:
    root = convert_to_html(copy.deepcopy(body))
    container = root.find("body")
    first = container[0] if len(container) else None
    if first is not None and first.tag in HEADING_LEVELS and _same_words("".join(first.itertext()), title):
        # The page's own headline: the story shows its title already.
        container.remove(first)
    for element in container.iter("pre"):
        # Inline code comes out as <pre> inside a paragraph; keep it inline.
        if element.getparent() is not container:
            element.tag = "code"
    for element in container.iter("h1", "h2", "h3", "h4", "h5", "h6"):
        element.tag = HEADING_LEVELS[element.tag]
    for link in container.iter("a"):
        href = _absolute(link.get("href", ""), base=base, schemes=LINK_SCHEMES)
        if href:
            link.set("href", href)
        else:
            link.attrib.pop("href", None)
    leading = html_lib.escape(container.text or "", quote=False)
    children = "".join(lxml_html.tostring(child, encoding="unicode", method="html") for child in container)
    return (leading + children).strip()


def _same_words(first: str, second: str) -> bool:
    return " ".join(first.casefold().split()) == " ".join(second.casefold().split())


def _meta_content(tree, names: tuple[str, ...]) -> str:
    for name in names:
        for attribute in ("property", "name"):
            values = tree.xpath(f"//meta[@{attribute}=$name]/@content", name=name)
            if values and values[0].strip():
                return " ".join(values[0].split())
    return ""


def _absolute(value: str, *, base: str, schemes: frozenset[str]) -> str:
    value = (value or "").strip()
    if not value:
        return ""
    try:
        absolute = urllib.parse.urljoin(base, value)
        scheme = urllib.parse.urlsplit(absolute).scheme.lower()
    except ValueError:
        return ""
    return absolute if scheme in schemes else ""


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None
