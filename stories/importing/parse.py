"""Reading fetched feed bytes (RSS 0.9x/1.0/2.0, Atom, JSON Feed) into plain entries, safely.

Nothing here touches the network or the disk: feedparser gets the bytes we fetched, never a URL
or a path, and entity declarations in a feed are cut down before any parser expands them (see
feedparser_patches, applied at start-up and on first use). What a feed may expand to is bounded before
parsing starts, and each entry's text is bounded after.
"""

import calendar
import dataclasses
import functools
import html
import io
import json
import pyexpat
import re
import time
import urllib.parse
import xml.sax
import xml.sax.handler
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import feedparser
import feedparser.api
from feedparser.datetimes import _parse_date as parse_feed_date

from newsreader.sanitize import html_to_text

from . import feedparser_patches

FUTURE_DATE_TOLERANCE = timedelta(minutes=15)
# Characters of title, summary and content one entry keeps, together; the rest is cut and the cut noted.
MAX_ENTRY_TEXT_CHARS = 1_000_000
MIN_SAFE_EXPAT_VERSION = (2, 4, 1)
JSON_FEED_VERSIONS = ("https://jsonfeed.org/version/1", "http://jsonfeed.org/version/1")
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
WEB_SCHEMES = frozenset({"http", "https"})


class FeedParseError(Exception):
    """The response cannot be read as a feed; ``str(error)`` says why in words an operator can act on."""


class UnsafeXMLParser(RuntimeError):
    """The XML parser in use would expand entities without bound, read files or fetch URLs."""


class ImageSource(StrEnum):
    MEDIA_CONTENT = "media:content"
    MEDIA_THUMBNAIL = "media:thumbnail"
    ENCLOSURE = "enclosure"
    JSON_FEED = "json feed image"
    JSON_ATTACHMENT = "json feed attachment"


@dataclass(frozen=True, slots=True)
class ParsedImage:
    """A picture the feed offers for an entry, with what the feed says about it."""

    url: str
    source: ImageSource
    width: int | None = None
    height: int | None = None
    credit: str = ""
    alt: str = ""


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    """One item of a feed. Text fields are plain text; the two ``*_html`` fields are unsanitised HTML
    (plain-text content arrives escaped) and must go through ``newsreader.sanitize`` before display."""

    title: str
    link: str
    guid: str
    author: str
    published: datetime | None
    published_was_in_future: bool
    summary_html: str
    content_html: str
    images: tuple[ParsedImage, ...] = ()
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A feed's own fields and its entries. ``bozo`` says the feed had problems that did not stop us
    reading it; ``problem`` says which, in plain words."""

    title: str
    link: str
    language: str
    ttl_minutes: int | None
    format: str
    entries: list[ParsedEntry] = field(default_factory=list)
    bozo: bool = False
    problem: str = ""


def parse_feed(
    *, content: bytes, url: str, headers: dict[str, str] | None = None, now: datetime | None = None
) -> ParsedFeed:
    """Parse the fetched body of `url`. Raises FeedParseError when it is not a usable feed."""
    now = now or datetime.now(UTC)
    headers = {name.lower(): value for name, value in (headers or {}).items()}
    if not content or not content.strip():
        raise FeedParseError("The response is empty, not a feed")
    limit = feedparser_patches.MAX_FEED_TEXT_CHARS
    if len(content) > limit:
        raise FeedParseError(
            f"The feed is {len(content):,} bytes, more than the {limit:,} characters of text a feed may hold; refused"
        )
    if _looks_like_json(content, headers.get("content-type", "")):
        return _parse_json_feed(content, url=url, now=now)
    return _parse_xml_feed(content, url=url, headers=headers, now=now)


def text_of(html_fragment: str) -> str:
    """Plain text of an entry's HTML, for summaries and search."""
    return html_to_text(html_fragment)


def _entries_within_limit(entries: list[ParsedEntry]) -> tuple[list[ParsedEntry], str]:
    """The entries with title, summary and content cut to MAX_ENTRY_TEXT_CHARS together (in that order,
    so an honest entry loses the end of its content), and a note saying how many were cut.

    A cut may fall inside a tag or an entity; the sanitiser every body goes through drops or escapes it."""
    kept: list[ParsedEntry] = []
    cut = 0
    for entry in entries:
        if len(entry.title) + len(entry.summary_html) + len(entry.content_html) <= MAX_ENTRY_TEXT_CHARS:
            kept.append(entry)
            continue
        title = entry.title[:MAX_ENTRY_TEXT_CHARS]
        summary_html = entry.summary_html[: MAX_ENTRY_TEXT_CHARS - len(title)]
        content_html = entry.content_html[: MAX_ENTRY_TEXT_CHARS - len(title) - len(summary_html)]
        kept.append(dataclasses.replace(entry, title=title, summary_html=summary_html, content_html=content_html))
        cut += 1
    if not cut:
        return kept, ""
    counted = "1 entry was" if cut == 1 else f"{cut} entries were"
    return kept, f"{counted} longer than {MAX_ENTRY_TEXT_CHARS:,} characters of text and cut to that length"


def _join_problems(*problems: str) -> str:
    return "; ".join(problem for problem in problems if problem)


# XML feeds -------------------------------------------------------------------------------------


def _parse_xml_feed(content: bytes, *, url: str, headers: dict[str, str], now: datetime) -> ParsedFeed:
    # The location tells feedparser the base for relative links; a BytesIO keeps it from treating
    # the bytes as a path or URL to open.
    content_type, label_problem = _xml_content_type(headers.get("content-type", ""))
    response_headers = {**headers, "content-type": content_type, "content-location": url}
    feedparser_patches.apply()
    try:
        result = feedparser.parse(io.BytesIO(content), response_headers=response_headers, sanitize_html=False)
    except feedparser_patches.FeedRefused as error:
        raise FeedParseError(str(error)) from error
    problem = _describe_bozo(result.get("bozo_exception")) if result.get("bozo") else label_problem
    entries = result.get("entries") or []
    if not entries:
        if not result.get("version"):
            raise FeedParseError(_not_a_feed_reason(content, problem if result.get("bozo") else ""))
        if result.get("bozo") and not isinstance(result.get("bozo_exception"), _HARMLESS_BOZO):
            raise FeedParseError(f"The feed is broken and no stories could be read from it: {problem}")
    channel = result.get("feed") or {}
    feed_link = _web_url(channel.get("link", ""), base=url)
    parsed_entries, cut_note = _entries_within_limit([_xml_entry(entry, feed_url=url, now=now) for entry in entries])
    return ParsedFeed(
        title=_plain_text(channel.get("title", ""), channel.get("title_detail")),
        link=feed_link,
        language=(channel.get("language") or "").strip()[:16],
        ttl_minutes=_positive_int(channel.get("ttl")),
        format=result.get("version") or "unknown",
        entries=parsed_entries,
        bozo=bool(result.get("bozo")),
        problem=_join_problems(problem, cut_note),
    )


def _xml_content_type(content_type: str) -> tuple[str, str]:
    """The Content-Type to read the body with, and a note when the server's label was wrong.

    Servers often send feeds as text/html, text/plain or with no type at all; feedparser would then
    guess US-ASCII or Latin-1 and read the feed loosely. Read such a body as XML, keeping any charset."""
    media_type, _, parameters = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type in _XML_MEDIA_TYPES or (
        media_type.startswith(("application/", "text/")) and media_type.endswith("+xml")
    ):
        return content_type, ""
    charset = next((part.strip() for part in parameters.split(";") if part.strip().lower().startswith("charset")), "")
    note = f"The server labelled the feed {media_type}, not XML" if media_type else "The server gave no Content-Type"
    return "application/xml" + (f"; {charset}" if charset else ""), note


_XML_MEDIA_TYPES = frozenset(
    {"application/xml", "text/xml", "application/xml-dtd", "application/xml-external-parsed-entity"}
)


def _xml_entry(parsed: feedparser.FeedParserDict, *, feed_url: str, now: datetime) -> ParsedEntry:
    # FeedParserDict's lookups (aliases, computed keys) cost more than the rest of this function: read plain
    # copies of the entry and of the parts read key by key, and the one computed key used, "enclosures", from
    # the original.
    entry = dict(parsed)
    for name in ("title_detail", "summary_detail", "author_detail"):
        if entry.get(name):
            entry[name] = dict(entry[name])
    for name in ("content", "tags"):
        if entry.get(name):
            entry[name] = [dict(part) for part in entry[name]]
    base = _entry_base(entry, feed_url)
    published, clamped = _entry_date(entry, now=now)
    return ParsedEntry(
        title=_plain_text(entry.get("title", ""), entry.get("title_detail")),
        link=_web_url(entry.get("link", ""), base=base),
        guid=(entry.get("id") or "").strip(),
        author=_author_name(entry),
        published=published,
        published_was_in_future=clamped,
        summary_html=_html_of(entry.get("summary_detail"), fallback=entry.get("summary", ""), base=base),
        content_html=_content_html(entry.get("content") or [], base=base),
        images=tuple(_xml_images(entry, enclosures=parsed.get("enclosures") or [], base=base)),
        categories=_categories(term.get("label") or term.get("term") for term in entry.get("tags") or []),
    )


def _entry_base(entry: dict, feed_url: str) -> str:
    for detail in (entry.get("summary_detail"), *(entry.get("content") or [])):
        if detail and detail.get("base"):
            return _joined_url(feed_url, detail["base"])
    return feed_url


@functools.lru_cache(maxsize=256)
def _joined_url(base: str, url: str) -> str:
    """urljoin, remembered: every entry of a feed usually has the same base."""
    return urllib.parse.urljoin(base, url)


def _entry_date(entry: dict, *, now: datetime) -> tuple[datetime | None, bool]:
    for name in ("published_parsed", "updated_parsed", "created_parsed"):
        moment = _datetime_from_struct(entry.get(name))
        if moment is not None:
            return _clamp_future(moment, now=now)
    return None, False


def _datetime_from_struct(value: time.struct_time | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _clamp_future(moment: datetime, *, now: datetime) -> tuple[datetime, bool]:
    if moment > now + FUTURE_DATE_TOLERANCE:
        return now, True
    return moment, False


def _author_name(entry: dict) -> str:
    detail = entry.get("author_detail") or {}
    name = detail.get("name") or entry.get("author") or ""
    return _plain_text(name)


def _content_html(contents: list[dict], *, base: str) -> str:
    """The richest content block: the first HTML one, else the first of any type."""
    if not contents:
        return ""
    chosen = next((block for block in contents if block.get("type") in HTML_TYPES), contents[0])
    return _html_of(chosen, fallback="", base=base)


def _html_of(detail: dict | None, *, fallback: str, base: str) -> str:
    """HTML for a feed text construct: HTML stays HTML (with absolute links); plain text is escaped."""
    if not detail:
        return _absolute_links(fallback, base) if fallback else ""
    value = detail.get("value") or ""
    if detail.get("type") in HTML_TYPES:
        return _absolute_links(value, base)
    return html.escape(value, quote=False)


def _absolute_links(fragment: str, base: str) -> str:
    """feedparser resolves links in the HTML it parses; resolve again against the entry's base for the
    parts it leaves alone (JSON Feed, links whose base was relative). Absolute links stay as they are."""
    if not fragment or not base or not _has_relative_link(fragment):
        return fragment
    return feedparser_patches.resolve_relative_uris(fragment, base, "utf-8", "text/html")


def _has_relative_link(fragment: str) -> bool:
    """True when an href, src, cite or poster attribute of `fragment` holds a relative URL.

    Searched from each "=" and checked backwards for the attribute's name: a pattern starting with the names
    took 40 microseconds on a 1,000-character fragment (the regex engine tries it at every position), this
    one a microsecond."""
    for value in _RELATIVE_VALUE.finditer(fragment):
        name_end = value.start()
        while name_end and fragment[name_end - 1].isspace():
            name_end -= 1
        name = _LINK_ATTRIBUTE_BEFORE.search(fragment, max(0, name_end - len("poster") - 1), name_end)
        if name is not None:
            return True
    return False


# What follows an attribute's "=" when its URL is relative: no scheme before a colon, and not empty.
_RELATIVE_VALUE = re.compile(r"""=\s*["']?(?!["']|[a-z][a-z0-9+.\-]*:)""", re.I)
_LINK_ATTRIBUTE_BEFORE = re.compile(r"\b(?:href|src|cite|poster)\Z", re.I)


def _xml_images(entry: dict, *, enclosures: list[dict], base: str) -> list[ParsedImage]:
    item_credit = _plain_text(entry.get("newsreader_media_credit", ""))
    item_alt = _plain_text(entry.get("newsreader_media_description", "")) or _plain_text(
        entry.get("newsreader_media_title", "")
    )
    images: list[ParsedImage] = []
    seen: set[str] = set()

    def add(raw_url: str, source: ImageSource, media: dict) -> None:
        image_url = _web_url(raw_url, base=base)
        if not image_url or image_url in seen:
            return
        seen.add(image_url)
        own_alt = _plain_text(media.get("newsreader_description", "")) or _plain_text(media.get("newsreader_title", ""))
        images.append(
            ParsedImage(
                url=image_url,
                source=source,
                width=_positive_int(media.get("width")),
                height=_positive_int(media.get("height")),
                credit=_plain_text(media.get("newsreader_credit", "")) or item_credit,
                alt=own_alt or item_alt,
            )
        )

    for media in entry.get("media_content") or []:
        medium = (media.get("medium") or "").lower()
        mime = (media.get("type") or "").lower()
        if medium == "image" or mime.startswith("image/"):
            add(media.get("url", ""), ImageSource.MEDIA_CONTENT, media)
    for media in entry.get("media_thumbnail") or []:
        add(media.get("url", ""), ImageSource.MEDIA_THUMBNAIL, media)
    for enclosure in enclosures:
        if (enclosure.get("type") or "").lower().startswith("image/"):
            add(enclosure.get("href", ""), ImageSource.ENCLOSURE, {})
    return images


def _describe_bozo(error: BaseException | None) -> str:
    if error is None:
        return ""
    if isinstance(error, xml.sax.SAXParseException):
        return f"The feed is not well-formed XML: {error.getMessage()} at line {error.getLineNumber()}"
    if isinstance(error, feedparser.CharacterEncodingOverride):
        return "The feed declares one character encoding but was served with another; the served one was used"
    if isinstance(error, feedparser.CharacterEncodingUnknown):
        return "The feed's character encoding could not be worked out"
    if isinstance(error, feedparser.NonXMLContentType):
        return "The server did not label the feed as XML (wrong Content-Type)"
    if isinstance(error, feedparser.UndeclaredNamespace):
        return f"The feed uses an undeclared XML namespace: {error}"
    return f"The feed has problems: {error}"


_HARMLESS_BOZO = (
    feedparser.CharacterEncodingOverride,
    feedparser.NonXMLContentType,
)


# The root element is <opml>, after any XML declaration, comments, processing instructions or doctype.
_OPML_ROOT = re.compile(rb"(?:<\?.*?\?>\s*|<!--.*?-->\s*|<!doctype[^>]*>\s*)*<opml[\s>/]", re.DOTALL)


def _not_a_feed_reason(content: bytes, problem: str) -> str:
    head = content[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if _OPML_ROOT.match(head):
        return (
            "The response is an OPML subscription list, not a feed: it names feeds rather than holding stories. "
            "Import it as sources instead, with Import OPML on the admin's Sources page or "
            "`python manage.py opml import FILE`"
        )
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head or b"<body" in head:
        return "The response is an HTML page, not a feed"
    reason = "The response is not an RSS, Atom or JSON feed"
    return f"{reason}. {problem}" if problem else reason


# JSON Feed -------------------------------------------------------------------------------------


def _looks_like_json(content: bytes, content_type: str) -> bool:
    start = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start == b"{":
        return True
    return "json" in content_type.lower() and start != b"<"


def _parse_json_feed(content: bytes, *, url: str, now: datetime) -> ParsedFeed:
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, RecursionError) as error:
        raise FeedParseError(f"The response looks like JSON but cannot be read: {error}") from error
    except json.JSONDecodeError as error:
        raise FeedParseError(
            f"The response looks like JSON but is not valid JSON: {error.msg} at line {error.lineno}"
        ) from error
    if not isinstance(document, dict) or not str(document.get("version", "")).startswith(JSON_FEED_VERSIONS):
        raise FeedParseError("The response is JSON but not a JSON Feed (no jsonfeed.org version)")
    items = document.get("items")
    if not isinstance(items, list):
        raise FeedParseError("The JSON Feed has no list of items")
    base = _web_url(_string(document.get("feed_url")), base=url) or url
    feed_authors = _json_authors(document)
    entries, cut_note = _entries_within_limit(
        [_json_entry(item, base=base, feed_authors=feed_authors, now=now) for item in items if isinstance(item, dict)]
    )
    return ParsedFeed(
        title=_plain_text(_string(document.get("title"))),
        link=_web_url(_string(document.get("home_page_url")), base=base),
        language=_string(document.get("language"))[:16],
        ttl_minutes=None,
        format="json" + str(document["version"]).rsplit("/", 1)[-1].replace(".", ""),
        entries=entries,
        problem=cut_note,
    )


def _json_entry(item: dict, *, base: str, feed_authors: list[str], now: datetime) -> ParsedEntry:
    link = _web_url(_string(item.get("url")) or _string(item.get("external_url")), base=base)
    content_html = _string(item.get("content_html"))
    content_text = _string(item.get("content_text"))
    summary = _string(item.get("summary"))
    published, clamped = None, False
    for name in ("date_published", "date_modified"):
        moment = _datetime_from_struct(parse_feed_date(_string(item.get(name))))
        if moment is not None:
            published, clamped = _clamp_future(moment, now=now)
            break
    identifier = item.get("id")
    return ParsedEntry(
        title=_plain_text(_string(item.get("title"))),
        link=link,
        guid=str(identifier).strip() if isinstance(identifier, str | int) and not isinstance(identifier, bool) else "",
        author=(_json_authors(item) or feed_authors or [""])[0],
        published=published,
        published_was_in_future=clamped,
        summary_html=html.escape(summary, quote=False),
        content_html=_absolute_links(content_html, link or base)
        if content_html
        else html.escape(content_text, quote=False),
        images=tuple(_json_images(item, base=link or base)),
        categories=_categories(tag for tag in item.get("tags") or [] if isinstance(tag, str)),
    )


def _json_authors(document: dict) -> list[str]:
    authors = document.get("authors")
    if not isinstance(authors, list):
        authors = [document.get("author")]
    names = [_plain_text(_string(author.get("name"))) for author in authors if isinstance(author, dict)]
    return [name for name in names if name]


def _json_images(item: dict, *, base: str) -> list[ParsedImage]:
    images = []
    for name in ("image", "banner_image"):
        image_url = _web_url(_string(item.get(name)), base=base)
        if image_url:
            images.append(ParsedImage(url=image_url, source=ImageSource.JSON_FEED))
    attachments = item.get("attachments")
    for attachment in attachments if isinstance(attachments, list) else []:
        if not isinstance(attachment, dict) or not _string(attachment.get("mime_type")).startswith("image/"):
            continue
        image_url = _web_url(_string(attachment.get("url")), base=base)
        if image_url:
            images.append(
                ParsedImage(
                    url=image_url, source=ImageSource.JSON_ATTACHMENT, alt=_plain_text(_string(attachment.get("title")))
                )
            )
    return images


def _string(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


# Shared helpers --------------------------------------------------------------------------------


def _plain_text(value: str, detail: dict | None = None) -> str:
    """Text for titles and names: tags stripped when the feed marks it HTML, entities decoded, one line."""
    if not value:
        return ""
    if detail and detail.get("type") in HTML_TYPES:
        return html_to_text(value)
    return " ".join(html.unescape(value).split())


def _web_url(value: str, *, base: str) -> str:
    """`value` made absolute against `base`, or "" unless that gives an http(s) URL."""
    value = (value or "").strip()
    if not value:
        return ""
    joined = feedparser_patches.plainly_joined(base, value)
    if joined is not None:
        return joined
    try:
        absolute = urllib.parse.urljoin(base, value)
        parts = urllib.parse.urlsplit(absolute)
    except ValueError:
        return ""
    if parts.scheme.lower() not in WEB_SCHEMES or not parts.hostname:
        return ""
    return absolute


def _positive_int(value: object) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _categories(names) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for name in names:
        text = _plain_text(name or "")
        if text and text.casefold() not in seen:
            seen[text.casefold()] = text
    return tuple(seen.values())


# Start-up check --------------------------------------------------------------------------------


def assert_xml_parser_is_safe() -> None:
    """Refuse to run with an XML parser that would expand entities without bound, resolve external
    entities or fetch a DTD. Meant for start-up (AppConfig.ready); raises UnsafeXMLParser."""
    expat_version = tuple(pyexpat.version_info)
    if expat_version < MIN_SAFE_EXPAT_VERSION:
        raise UnsafeXMLParser(
            f"expat {'.'.join(map(str, expat_version))} has no protection against entity expansion; "
            f"{'.'.join(map(str, MIN_SAFE_EXPAT_VERSION))} or later is needed"
        )
    sax_parser = xml.sax.make_parser(feedparser.api.PREFERRED_XML_PARSERS)  # noqa: S317 - inspected, never fed
    if not type(sax_parser).__module__.startswith("xml.sax.expatreader"):
        raise UnsafeXMLParser(f"feedparser would use {type(sax_parser).__module__}, not the checked expat reader")
    for feature in (xml.sax.handler.feature_external_ges, xml.sax.handler.feature_external_pes):
        if sax_parser.getFeature(feature):
            raise UnsafeXMLParser(f"The XML parser resolves external entities by default ({feature})")
    if not feedparser_patches.is_applied():
        raise UnsafeXMLParser("feedparser's entity handling is not the bounded one")
    for bomb in _SELF_TEST_BOMBS:
        try:
            feed = parse_feed(content=bomb, url="https://feed.invalid/")
        except FeedParseError:
            continue
        longest = max((len(entry.title) + len(entry.summary_html) for entry in feed.entries), default=0)
        if longest > len(bomb) * 2:
            raise UnsafeXMLParser("A feed with nested or repeated entities was expanded without bound")


def _self_test_bombs() -> list[bytes]:
    """Small bombs that reach feedparser's own entity handling. (A bomb whose DTD feedparser leaves to
    expat is refused by expat >= 2.4.1, checked by version above: proving that takes expat past its
    8 MiB activation threshold, too slow for start-up; the test suite does it.)"""
    nested = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">\n' for i in range(1, 8))
    feed = (
        '<rss version="2.0"><channel><title>t</title>'
        "<item><title>{0}</title><description>{0}</description></item></channel></rss>"
    )
    return [
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY e0 "lol">\n{nested}]>\n{feed.format("&e7;")}'.encode(),
        f'<!DOCTYPE rss [\n<!ENTITY long "{"x" * 10_000}">\n]>\n{feed.format("&long;" * 200)}'.encode(),
    ]


_SELF_TEST_BOMBS = _self_test_bombs()
