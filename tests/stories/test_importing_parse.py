"""Reading feeds: RSS, Atom and JSON Feed entries as plain fields, clear errors for what is not a feed,
and XML that cannot make the parser expand entities, read a file or reach the network."""

import contextlib
import copy
import io
import json
import random
import re
import sys
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from html import escape as html_escape

import pytest

from stories.importing import feedparser_patches, parse
from stories.importing.parse import FeedParseError, ImageSource, parse_feed
from tests.conftest import shared_data
from tests.httpserver import LocalHTTPServer

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FEED_URL = "https://news.example.org/feeds/world.xml"


# What the parser did outside the process while a block ran: connections, URL requests, files opened.
_io_seen: list[tuple[str, str]] | None = None
_io_watcher: int | None = None


def _record_io(event: str, args: tuple) -> None:
    if _io_seen is None or threading.get_ident() != _io_watcher:
        return  # other threads (a server or listener an earlier test left running) are not the parser
    if event in ("socket.connect", "socket.getaddrinfo", "urllib.Request"):
        _io_seen.append((event, repr(args)[:200]))
    elif event == "open" and isinstance(args[0], str | bytes):
        _io_seen.append((event, str(args[0])))


sys.addaudithook(_record_io)


@contextlib.contextmanager
def watching_io():
    """Collect the network and file events this thread raises while the block runs (see ``sys.addaudithook``)."""
    global _io_seen, _io_watcher
    seen: list[tuple[str, str]] = []
    _io_seen, _io_watcher = seen, threading.get_ident()
    try:
        yield seen
    finally:
        _io_seen = None


def network_events(seen: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [event for event in seen if event[0] != "open"]


def rss(items: str, *, channel: str = "", namespaces: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" {namespaces}><channel>'
        f"<title>World news</title><link>https://news.example.org/</link>{channel}{items}</channel></rss>"
    ).encode()


MEDIA_NS = 'xmlns:media="http://search.yahoo.com/mrss/"'


# RSS ---------------------------------------------------------------------------------------------


def test_rss_item_becomes_an_entry_with_plain_title_absolute_link_and_utc_date():
    feed = parse_feed(
        content=rss(
            "<item><title>Ports &amp;amp; harbours &lt;b&gt;reopen&lt;/b&gt;</title>"
            "<link>/2025/ports-reopen</link><guid isPermaLink='false'>urn:story:81</guid>"
            "<author>desk@news.example.org (Ana Lima)</author>"
            "<pubDate>Fri, 28 Feb 2025 09:30:00 +0100</pubDate>"
            "<category>Shipping</category><category>Europe</category><category>shipping</category></item>",
            channel="<ttl>45</ttl><language>en-gb</language>",
        ),
        url=FEED_URL,
        headers={"Content-Type": "application/rss+xml"},
        now=NOW,
    )

    assert (feed.title, feed.link, feed.ttl_minutes, feed.language) == (
        "World news",
        "https://news.example.org/",
        45,
        "en-gb",
    )
    [entry] = feed.entries
    assert entry.title == "Ports & harbours reopen"
    assert entry.link == "https://news.example.org/2025/ports-reopen"
    assert entry.guid == "urn:story:81"
    assert entry.published == datetime(2025, 2, 28, 8, 30, tzinfo=UTC)
    assert entry.categories == ("Shipping", "Europe")
    assert "Ana Lima" in entry.author
    assert not feed.bozo


def test_relative_links_inside_description_are_made_absolute():
    feed = parse_feed(
        content=rss(
            "<item><title>T</title><link>https://news.example.org/a</link><description>"
            '&lt;p&gt;See &lt;a href="/maps/port"&gt;the map&lt;/a&gt; and &lt;a href="../b"&gt;more&lt;/a&gt;'
            '&lt;img src="pics/1.jpg"&gt;&lt;/p&gt;</description></item>'
        ),
        url=FEED_URL,
        headers={},
        now=NOW,
    )

    summary = feed.entries[0].summary_html
    assert 'href="https://news.example.org/maps/port"' in summary
    assert 'href="https://news.example.org/b"' in summary
    assert 'src="https://news.example.org/feeds/pics/1.jpg"' in summary


def test_json_feed_links_are_made_absolute_however_their_attributes_are_written():
    item = {
        "id": "1",
        "url": "https://news.example.org/a/story",
        "content_html": '<p><a HREF = "/maps">map</a> <a href=b>b</a> <img\nsrc=\'c.jpg\'> <a xhref="/no">x</a></p>',
    }
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": [item]}

    html = parse_feed(content=json.dumps(document).encode(), url=FEED_URL, now=NOW).entries[0].content_html

    assert 'href="https://news.example.org/maps"' in html
    assert 'href="https://news.example.org/a/b"' in html
    assert 'src="https://news.example.org/a/c.jpg"' in html
    assert 'xhref="/no"' in html


def test_relative_links_are_told_apart_from_absolute_ones_as_the_plain_pattern_does():
    plain = re.compile(r"""\b(?:href|src|cite|poster)\s*=\s*["']?(?!["']|[a-z][a-z0-9+.\-]*:)""", re.I)
    pieces = ["href", "HREF", "src", "cite", "poster", "xhref", "_src", "posterx", "=", " ", "\u00a0", "\n", '"', "'"]
    pieces += ["http:", "https://a", "javascript:", "/x", "#", "a", "1", ":", "<a ", ">", "é"]
    rng = random.Random(5)
    fragments = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(50_000)]

    found = [parse._has_relative_link(fragment) for fragment in fragments]

    assert found == [bool(plain.search(fragment)) for fragment in fragments]
    assert 100 < sum(found) < len(fragments) - 100


def test_feeds_read_the_same_with_and_without_the_patches_that_make_feedparser_faster(monkeypatch):
    files = sorted(path for path in shared_data("feeds").rglob("*") if path.is_file())
    assert len(files) > 2000

    def read_all() -> list:
        read = []
        for path in files:
            for url in (FEED_URL, "http://example.com/a/b/feed.xml?edition=1&lang=en"):
                try:
                    read.append(parse_feed(content=path.read_bytes(), url=url, now=NOW))
                except FeedParseError as error:
                    read.append(str(error))
        return read

    patched = read_all()
    _restore_speed_patches(monkeypatch)
    monkeypatch.setattr(
        feedparser_patches, "resolve_relative_uris", feedparser_patches._originals["resolve_relative_uris"]
    )
    assert feedparser_patches.feedparser.urls._urljoin is feedparser_patches._originals["_urljoin"]

    assert read_all() == patched


def _restore_speed_patches(monkeypatch) -> None:
    for owner, name in feedparser_patches.PATCHED_TARGETS:
        if name in feedparser_patches.SPEED_PATCHES:
            monkeypatch.setattr(owner, name, feedparser_patches._originals[name])


def _tree(value):
    """A parse result as nested plain values, with each mapping's class: equal trees mean equal results."""
    if isinstance(value, dict):
        items = {key: _tree(item) for key, item in value.items() if key != "bozo_exception"}
        return (type(value).__name__, items)
    if isinstance(value, list | tuple) and not isinstance(value, time.struct_time):
        return [_tree(item) for item in value]
    return value


def test_feedparser_gives_the_same_results_with_and_without_the_patches_that_make_it_faster(monkeypatch):
    files = sorted(path for path in shared_data("feeds").rglob("*") if path.is_file())
    documents = [path.read_bytes() for path in files] + [_relative_links_feed(), _relative_links_feed(atom=True)]
    bases = (FEED_URL, "http://example.com/a/b/feed.xml?edition=1&lang=en", "")

    def parse_all() -> list:
        results = []
        for number, document in enumerate(documents):
            headers = {"content-location": bases[number % len(bases)], "content-type": "application/xml"}
            try:
                result = feedparser_patches.feedparser.parse(
                    io.BytesIO(document), response_headers=headers, sanitize_html=False
                )
            except feedparser_patches.FeedRefused as error:
                results.append(str(error))
                continue
            results.append(_tree({"feed": result.get("feed"), "entries": result.get("entries")}))
        return results

    feedparser_patches.apply()
    patched = parse_all()
    _restore_speed_patches(monkeypatch)

    assert parse_all() == patched
    assert sum(len(result[1]["entries"]) for result in patched if isinstance(result, tuple)) > 1000


def _relative_links_feed(*, atom: bool = False) -> bytes:
    """Entries whose links, GUIDs and HTML point every way a feed may: absolute, from the host, from the
    feed's directory, with dot segments, queries and fragments, under xml:base."""
    links = ["https://news.example.org/a?b=1#c", "/story/1", "story/2?x=1", "../up", "./here", "//other.org/x"]
    links += ["/a//b", "HTTPS://News.example.org/Caps", "mailto:desk@example.org", "?only=query", "#only", "a;p"]
    if atom:
        entries = "".join(
            f'<entry xml:base="{("/base/", "https://b.example.org/x/", "sub/")[n % 3]}"><title>Story {n}</title>'
            f'<id>{link}</id><link href="{html_escape(link)}"/>'
            f'<content type="html">{html_escape(f"<p><a href={link!r}>more</a></p>")}</content></entry>'
            for n, link in enumerate(links)
        )
        return f'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>{entries}</feed>'.encode()
    items = "".join(
        f"<item><title>Story {n}</title><link>{html_escape(link)}</link><guid>{html_escape(link)}</guid>"
        f"<description>{html_escape(f'<p><a href={link!r}>more</a> <img src={link!r}></p>')}</description></item>"
        for n, link in enumerate(links)
    )
    return f'<rss version="2.0"><channel><title>T</title><link>/</link>{items}</channel></rss>'.encode()


def test_urls_join_to_the_string_feedparser_gives_without_the_plain_url_shortcut():
    pieces = ["http:", "https:", "HTTP:", "//", "/", "a", "B", "7", ".", "..", "?", "#", ";", ":", "@", "%20", "&"]
    pieces += ["=", " ", "\t", "~", "[", "]", "é", "news.example.org", ":8080", "mailto:", "javascript:", "'", "-"]
    bases = [FEED_URL, "https://news.example.org/a/b/?q=1", "", "http://example.com", "http://example.com/"]
    bases += ["http://e.com/a//b/c", "http://e.com/a/./b", "https://u:p@h.org/x", "HTTPS://H.org/a/b;p?q#f"]
    bases += ["ftp://x.org/a", "http://[::1]/a/", "http://[::1/a", "/relative/base", "http://:80/a"]
    rng = random.Random(3)
    original = feedparser_patches._originals["_urljoin"]
    shortcut = 0

    for _ in range(100_000):
        uri = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        base = rng.choice([*bases, "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))])
        assert feedparser_patches.join_url(base, uri) == original(base, uri), (base, uri)
        joined = feedparser_patches.plainly_joined(base, uri)
        if joined is not None:
            shortcut += 1
            assert joined == urllib.parse.urljoin(base, uri), (base, uri)
            assert urllib.parse.urlsplit(joined).scheme in ("http", "https")
            assert urllib.parse.urlsplit(joined).hostname, (base, uri)

    assert shortcut > 2_000
    for base, uri, joined in [
        (
            FEED_URL,
            "https://news.example.org/story/1?utm_source=rss#top",
            "https://news.example.org/story/1?utm_source=rss#top",
        ),
        (FEED_URL, "/story/1", "https://news.example.org/story/1"),
        (FEED_URL, "story-1", "https://news.example.org/feeds/story-1"),
    ]:
        assert feedparser_patches.plainly_joined(base, uri) == joined


def test_content_parameters_copy_as_feedparser_copies_them():
    params = feedparser_patches._ContentParams(
        feedparser_patches.feedparser.util.FeedParserDict({"type": "text/html", "language": None, "base": FEED_URL})
    )
    nested = feedparser_patches._ContentParams({"type": "text/html", "extra": ["a", {"b": 1}]})

    for original in (params, nested):
        copied = copy.deepcopy(original)
        plain = copy.deepcopy(feedparser_patches.feedparser.util.FeedParserDict(original))
        assert type(copied) is type(plain) is feedparser_patches.feedparser.util.FeedParserDict
        assert copied == plain == original
    assert copy.deepcopy(nested)["extra"] is not nested["extra"]
    assert params.get("type") == "text/html" and params.get("mode", "xml") == "xml"


def test_links_in_simple_html_resolve_to_the_string_feedparser_gives_without_its_sgml_parser(monkeypatch):
    payloads = shared_data("xss/payloadbox_xss-payload-list.txt").read_text(encoding="utf-8", errors="replace")
    pieces = ["<p>", "</p>", "<a href='/quay'>", '<a HREF="tide?a=1&amp;b=2" title="Tide &amp; time">', "</a>"]
    pieces += ["<img src='crane.png' alt=\"A crane\">", "<br>", "Berth ", "&amp;", "&nbsp;", "&#233;", "&#x2019;"]
    pieces += ["&#128;", "&unknown;", "&", "<", ">", '"', "'", "<P CLASS='note'>", "</P >", "< p>", "<a href=bare>"]
    pieces += ["<a  href = 'spaced' >", "<q cite='/c'>", '<blockquote cite="../d">', "\u00a0", "é", "\n", "<br/>"]
    pieces += ['<a href="javascript:x">', "<a href=' /padded '>", "<video poster='p.jpg' src=\"v.mp4\">", "<!-- c -->"]
    rng = random.Random(11)
    fragments = [line for line in payloads.splitlines() if line.strip()]
    fragments += ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 10))) for _ in range(20_000)]
    original = feedparser_patches._originals["resolve_relative_uris"]
    slow_calls = []
    monkeypatch.setitem(
        feedparser_patches._originals, "resolve_relative_uris", lambda *args: slow_calls.append(args) or original(*args)
    )

    for number, fragment in enumerate(fragments):
        base = ("https://news.example.org/a/b/?q=1&x=2", FEED_URL, "")[number % 3]
        html_type = ("text/html", "application/xhtml+xml")[number % 2]
        assert feedparser_patches.resolve_relative_uris(fragment, base, "utf-8", html_type) == original(
            fragment, base, "utf-8", html_type
        ), fragment

    assert len(fragments) // 10 < len(fragments) - len(slow_calls)  # a good share took the fast way
    assert len(slow_calls) > len(fragments) // 10  # and the rest the original


def test_media_rss_images_keep_their_own_credit_and_caption_and_the_item_keeps_its_description():
    feed = parse_feed(
        content=rss(
            "<item><title>Storm</title><link>https://news.example.org/storm</link>"
            "<description>The storm reached the coast overnight.</description>"
            '<media:content url="https://img.example.org/storm.jpg" medium="image" width="1024" height="576">'
            "<media:credit>Photograph: Jo Park</media:credit>"
            "<media:description>Waves over the sea wall</media:description></media:content>"
            '<media:content url="https://img.example.org/clip.mp4" medium="video"/>'
            '<media:thumbnail url="/thumbs/storm.jpg" width="240" height="135"/>'
            '<enclosure url="https://img.example.org/storm.png" type="image/png" length="1"/>'
            '<enclosure url="https://img.example.org/podcast.mp3" type="audio/mpeg" length="1"/>'
            "<media:credit>News Agency</media:credit>"
            "<media:description>Caption for the item's pictures</media:description>"
            "</item>",
            namespaces=MEDIA_NS,
        ),
        url=FEED_URL,
        headers={"Content-Type": "application/rss+xml"},
        now=NOW,
    )

    entry = feed.entries[0]
    assert entry.summary_html == "The storm reached the coast overnight."
    assert [
        (image.url, image.source, image.width, image.height, image.credit, image.alt) for image in entry.images
    ] == [
        (
            "https://img.example.org/storm.jpg",
            ImageSource.MEDIA_CONTENT,
            1024,
            576,
            "Photograph: Jo Park",
            "Waves over the sea wall",
        ),
        (
            "https://news.example.org/thumbs/storm.jpg",
            ImageSource.MEDIA_THUMBNAIL,
            240,
            135,
            "News Agency",
            "Caption for the item's pictures",
        ),
        (
            "https://img.example.org/storm.png",
            ImageSource.ENCLOSURE,
            None,
            None,
            "News Agency",
            "Caption for the item's pictures",
        ),
    ]


def test_image_urls_that_are_not_web_urls_are_dropped():
    feed = parse_feed(
        content=rss(
            '<item><title>T</title><media:content url="javascript:alert(1)" medium="image"/>'
            '<media:thumbnail url="data:image/png;base64,AAAA"/></item>',
            namespaces=MEDIA_NS,
        ),
        url=FEED_URL,
        now=NOW,
    )

    assert feed.entries[0].images == ()


def test_rss_1_0_and_rss_0_91_feeds_yield_their_items_with_html_entities_decoded():
    rdf = (
        b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        b'xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        b'<channel rdf:about="https://news.example.org/"><title>R</title><link>https://news.example.org/</link></channel>'
        b'<item rdf:about="https://news.example.org/1"><title>One</title><link>https://news.example.org/1</link>'
        b"<dc:date>2025-02-27T10:00:00Z</dc:date><dc:creator>Sam Roe</dc:creator></item></rdf:RDF>"
    )
    old = (
        b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        b'"http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel><title>O</title>'
        b"<link>https://news.example.org/</link><item><title>Caf&eacute; opens</title>"
        b"<link>https://news.example.org/cafe</link></item></channel></rss>"
    )

    rdf_entry = parse_feed(content=rdf, url=FEED_URL, now=NOW).entries[0]
    old_entry = parse_feed(content=old, url=FEED_URL, now=NOW).entries[0]

    assert (rdf_entry.title, rdf_entry.author, rdf_entry.published) == (
        "One",
        "Sam Roe",
        datetime(2025, 2, 27, 10, tzinfo=UTC),
    )
    assert old_entry.title == "Café opens"


def test_charset_from_content_type_is_honoured():
    body = rss("<item><title>Über die Brücke</title><link>https://news.example.org/b</link></item>")
    body = body.replace(b' encoding="utf-8"', b"").decode().encode("iso-8859-1")

    feed = parse_feed(content=body, url=FEED_URL, headers={"Content-Type": "text/xml; charset=ISO-8859-1"}, now=NOW)

    assert feed.entries[0].title == "Über die Brücke"


def test_feed_served_as_html_or_without_a_type_is_still_read_as_a_feed():
    body = rss("<item><title>Zoë\u2019s café</title><link>https://news.example.org/z</link></item>")

    as_html = parse_feed(content=body, url=FEED_URL, headers={"Content-Type": "text/html"}, now=NOW)
    untyped = parse_feed(content=body, url=FEED_URL, headers={}, now=NOW)

    assert as_html.entries[0].title == untyped.entries[0].title == "Zoë\u2019s café"
    assert "text/html" in as_html.problem


def test_broken_feed_with_entries_still_yields_them_and_says_what_is_wrong():
    body = rss(
        "<item><title>First&nbsp;story</title><link>https://news.example.org/1</link></item>"
        "<item><title>Second</title><link>https://news.example.org/2</link></item>"
    )

    feed = parse_feed(content=body, url=FEED_URL, headers={"Content-Type": "application/rss+xml"}, now=NOW)

    assert feed.bozo
    assert "not well-formed" in feed.problem
    assert [entry.title for entry in feed.entries] == ["First story", "Second"]


# Atom --------------------------------------------------------------------------------------------


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://blog.example.net/posts/">
  <title type="html">Ship &lt;em&gt;log&lt;/em&gt;</title>
  <link rel="alternate" href="https://blog.example.net/"/>
  <entry>
    <title type="html">A &lt;em&gt;quiet&lt;/em&gt; sea</title>
    <link rel="alternate" href="quiet-sea"/>
    <id>tag:blog.example.net,2025:1</id>
    <updated>2025-02-20T08:00:00Z</updated>
    <author><name>Kai</name></author>
    <summary type="text">Less than 5 &lt; 6 &amp; no &lt;b&gt;tags&lt;/b&gt;</summary>
    <content type="html" xml:base="https://blog.example.net/2025/"
      >&lt;p&gt;&lt;a href="charts/wave"&gt;Chart&lt;/a&gt;&lt;/p&gt;</content>
  </entry>
  <entry>
    <title>Plain content</title>
    <link rel="alternate" href="https://blog.example.net/plain"/>
    <id>tag:blog.example.net,2025:2</id>
    <published>2025-02-21T08:00:00+02:00</published>
    <updated>2025-02-22T08:00:00Z</updated>
    <content type="text">&lt;script&gt;alert(1)&lt;/script&gt; is text here</content>
  </entry>
  <entry>
    <title>Xhtml content</title>
    <id>tag:blog.example.net,2025:3</id>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>See <a href="/about">us</a></p></div></content>
  </entry>
</feed>"""


def test_atom_entries_resolve_links_against_xml_base_and_fall_back_to_updated():
    feed = parse_feed(content=ATOM, url="https://blog.example.net/atom.xml", now=NOW)
    first, second, third = feed.entries

    assert feed.title == "Ship log"
    assert (first.title, first.link, first.author) == ("A quiet sea", "https://blog.example.net/posts/quiet-sea", "Kai")
    assert first.published == datetime(2025, 2, 20, 8, tzinfo=UTC)
    assert second.published == datetime(2025, 2, 21, 6, tzinfo=UTC)
    assert third.published is None
    assert 'href="https://blog.example.net/2025/charts/wave"' in first.content_html
    assert 'href="https://blog.example.net/about"' in third.content_html


def test_text_typed_content_is_escaped_so_it_is_never_taken_for_html():
    first, second, _ = parse_feed(content=ATOM, url="https://blog.example.net/atom.xml", now=NOW).entries

    assert first.summary_html == "Less than 5 &lt; 6 &amp; no &lt;b&gt;tags&lt;/b&gt;"
    assert second.content_html == "&lt;script&gt;alert(1)&lt;/script&gt; is text here"


def test_dates_in_the_future_are_clamped_to_now_and_flagged():
    def entry_dated(moment: datetime):
        stamp = moment.strftime("%a, %d %b %Y %H:%M:%S +0000")
        body = rss(f"<item><title>T</title><link>https://news.example.org/t</link><pubDate>{stamp}</pubDate></item>")
        return parse_feed(content=body, url=FEED_URL, now=NOW).entries[0]

    far = entry_dated(NOW + timedelta(days=2))
    near = entry_dated(NOW + timedelta(minutes=5))

    assert (far.published, far.published_was_in_future) == (NOW, True)
    assert (near.published, near.published_was_in_future) == (NOW + timedelta(minutes=5), False)


# JSON Feed ---------------------------------------------------------------------------------------


def test_json_feed_1_1_items_become_entries():
    body = b"""{
      "version": "https://jsonfeed.org/version/1.1",
      "title": "Harbour notes", "home_page_url": "https://notes.example.com/",
      "feed_url": "https://notes.example.com/feed.json", "language": "en",
      "authors": [{"name": "Feed Author"}],
      "items": [
        {"id": "n-2", "url": "/2025/tides", "title": "Tides &amp; times",
         "content_html": "<p>Read <a href=\\"/tables\\">the tables</a></p>",
         "summary": "Tide <tables>", "date_published": "2025-02-25T07:00:00-05:00",
         "authors": [{"name": "Mo Ise"}], "tags": ["tides", "Tides", "coast"],
         "image": "/img/tide.jpg",
         "attachments": [{"url": "https://notes.example.com/map.png", "mime_type": "image/png", "title": "Tide map"},
                         {"url": "https://notes.example.com/ep.mp3", "mime_type": "audio/mpeg"}]},
        {"id": 7, "url": "https://notes.example.com/plain", "content_text": "Plain <b>text</b>",
         "date_modified": "2025-02-24T10:00:00Z"},
        "not an item"
      ]
    }"""

    feed = parse_feed(content=body, url="https://notes.example.com/feed.json", headers={}, now=NOW)
    first, second = feed.entries

    assert (feed.title, feed.link, feed.language, feed.format) == (
        "Harbour notes",
        "https://notes.example.com/",
        "en",
        "json11",
    )
    assert (first.guid, first.title, first.link, first.author) == (
        "n-2",
        "Tides & times",
        "https://notes.example.com/2025/tides",
        "Mo Ise",
    )
    assert first.published == datetime(2025, 2, 25, 12, tzinfo=UTC)
    assert 'href="https://notes.example.com/tables"' in first.content_html
    assert first.summary_html == "Tide &lt;tables&gt;"
    assert first.categories == ("tides", "coast")
    assert [(image.url, image.source, image.alt) for image in first.images] == [
        ("https://notes.example.com/img/tide.jpg", ImageSource.JSON_FEED, ""),
        ("https://notes.example.com/map.png", ImageSource.JSON_ATTACHMENT, "Tide map"),
    ]
    assert (second.guid, second.author, second.content_html) == ("7", "Feed Author", "Plain &lt;b&gt;text&lt;/b&gt;")
    assert second.published == datetime(2025, 2, 24, 10, tzinfo=UTC)


def test_json_feed_is_recognised_by_content_type_or_by_its_opening_brace():
    body = b'\n  {"version": "https://jsonfeed.org/version/1", "items": [{"id": "1", "url": "https://x.example/1"}]}'

    by_type = parse_feed(content=body, url=FEED_URL, headers={"Content-Type": "application/feed+json"})
    by_brace = parse_feed(content=body, url=FEED_URL, headers={"Content-Type": "text/plain"})

    assert by_type.entries[0].link == by_brace.entries[0].link == "https://x.example/1"


def test_feedparser_json_sample_is_read():
    path = next(shared_data("feeds/wellformed/feedparser_json").glob("*.json"))

    feed = parse_feed(content=path.read_bytes(), url="https://example.org/feed.json")

    assert feed.title == "My Example Feed"
    assert len(feed.entries) == 2


# Not a feed --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b"", "application/rss+xml", "The response is empty, not a feed"),
        (b"  \n ", "application/rss+xml", "The response is empty, not a feed"),
        (
            b"<!DOCTYPE html><html><head><title>Home</title></head><body><p>Hi</p></body></html>",
            "text/html",
            "The response is an HTML page, not a feed",
        ),
        (b"<html><body>Moved</body></html>", "application/rss+xml", "The response is an HTML page, not a feed"),
        (b"\x00\x01\x02garbage\xff", "application/octet-stream", "The response is not an RSS, Atom or JSON feed"),
        (b"<root><element>text</element></root>", "application/xml", "The response is not an RSS, Atom or JSON feed"),
        (b'{"status": "ok"}', "application/json", "The response is JSON but not a JSON Feed"),
        (b'{"version": "https://jsonfeed.org/version/1", "items": 5}', "", "The JSON Feed has no list of items"),
        (b'{"version": ', "application/json", "The response looks like JSON but is not valid JSON"),
        (b"[" * 100_000, "application/json", "The response looks like JSON but"),
    ],
)
def test_what_is_not_a_feed_raises_a_clear_error(content, content_type, message):
    with pytest.raises(FeedParseError) as raised:
        parse_feed(content=content, url=FEED_URL, headers={"Content-Type": content_type})

    assert str(raised.value).startswith(message)


def test_rss_with_no_items_is_an_empty_feed_not_an_error():
    feed = parse_feed(content=rss(""), url=FEED_URL, headers={"Content-Type": "application/rss+xml"})

    assert feed.entries == []
    assert feed.title == "World news"


def test_bytes_that_name_a_local_file_are_parsed_as_bytes_not_opened(tmp_path):
    feed_file = tmp_path / "feed.xml"
    feed_file.write_bytes(rss("<item><title>From disk</title></item>"))

    with watching_io() as seen, pytest.raises(FeedParseError):
        parse_feed(content=str(feed_file).encode(), url=FEED_URL)

    assert str(feed_file) not in [path for event, path in seen if event == "open"]


# XML attacks -------------------------------------------------------------------------------------


def as_feeds(document: bytes) -> dict[str, bytes]:
    """The attack file itself, and its DTD in front of an RSS feed whose item carries the root's content,
    once as written and once with the DTD on one line after an XML declaration (which feedparser's own
    DOCTYPE handling does not touch, so expat's protections are what stops it)."""
    variants = {"as is": document}
    match = re.search(rb"<(?![?!])(\w+)[^>]*>(.*)</\1>", document, re.S)
    if match:
        prologue, inner = document[: match.start()], match.group(2)
        one_line = b'<?xml version="1.0"?>' + re.sub(rb"\s*\n\s*", b" ", prologue).strip()
        for name, head in (("in a feed", prologue), ("in a feed, DTD on one line", one_line)):
            variants[name] = head + (
                b'<rss version="2.0"><channel><title>c</title><item><title>'
                + inner
                + b"</title><description>"
                + inner
                + b"</description></item></channel></rss>"
            )
    return variants


def parsed_size(content: bytes) -> int:
    try:
        feed = parse_feed(content=content, url=FEED_URL)
    except FeedParseError:
        return 0
    return sum(len(entry.title) + len(entry.summary_html) + len(entry.content_html) for entry in feed.entries)


def test_entity_bombs_in_the_attack_corpus_are_not_expanded():
    attacks = shared_data("xml_attacks/defusedxml")
    blown_up = []
    for path in sorted(attacks.glob("*.x*")):
        for variant, content in as_feeds(path.read_bytes()).items():
            size = parsed_size(content)
            if size > 20 * len(content) + 10_000:
                blown_up.append(f"{path.name} ({variant}): {size} characters from {len(content)} bytes")

    assert not blown_up, "\n".join(blown_up)


def test_external_entities_and_dtds_are_never_fetched_or_read(tmp_path):
    attacks = shared_data("xml_attacks/defusedxml")
    secret = tmp_path / "secret.xml"
    secret.write_text("<element>TOP-SECRET-MARKER</element>")
    with LocalHTTPServer() as server:
        documents = {
            name: (attacks / name)
            .read_bytes()
            .replace(b"http://www.w3schools.com/xml/note.xml", server.url("/note.xml").encode())
            .replace(b"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd", server.url("/x.dtd").encode())
            .replace(b"file:///PATH/TO/xmltestdata/simple.xml", secret.as_uri().encode())
            for name in ("external.xml", "external_file.xml", "dtd.xml")
        }
        outputs = []
        with watching_io() as seen:
            for document in documents.values():
                for content in as_feeds(document).values():
                    try:
                        feed = parse_feed(content=content, url=FEED_URL)
                    except FeedParseError as error:
                        outputs.append(str(error))
                    else:
                        outputs.extend(entry.title + entry.summary_html for entry in feed.entries)

        assert server.connections == 0
    assert network_events(seen) == []
    assert str(secret) not in [path for event, path in seen if event == "open"]
    assert not any("TOP-SECRET-MARKER" in output for output in outputs)


def test_a_long_entity_used_many_times_is_not_expanded():
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY chunk "' + b"A" * 5_000 + b'">\n<!ENTITY ok "fine">\n]>\n'
        b'<rss version="2.0"><channel><title>c</title><item><title>&ok; ' + b"&chunk;" * 5_000 + b"</title>"
        b"</item></channel></rss>"
    )

    title = parse_feed(content=body, url=FEED_URL).entries[0].title

    assert title.startswith("fine &chunk;")
    assert len(title) < len(body)


def test_a_billion_laughs_on_one_line_never_reaches_expat():
    nested = "".join(f'<!ENTITY e{level} "{f"&e{level - 1};" * 10}">' for level in range(1, 10))
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e0 "lol">{nested}]>'
        '<rss version="2.0"><channel><title>&e0; &e9;</title><item><title>&e0; &e9;</title></item></channel></rss>'
    ).encode()

    feed = parse_feed(content=body, url=FEED_URL)

    assert feed.entries[0].title == "lol &e9;"
    assert "undefined entity at line 1" in feed.problem


def test_start_up_check_passes_with_the_parser_we_ship():
    parse.assert_xml_parser_is_safe()


def test_start_up_check_refuses_a_parser_that_expands_long_entities(monkeypatch):
    monkeypatch.setattr(feedparser_patches, "MAX_ENTITY_VALUE_LENGTH", 10**9)

    with pytest.raises(parse.UnsafeXMLParser, match="expanded without bound"):
        parse.assert_xml_parser_is_safe()


def test_start_up_check_refuses_an_old_expat(monkeypatch):
    monkeypatch.setattr(parse.pyexpat, "version_info", (2, 2, 10))

    with pytest.raises(parse.UnsafeXMLParser, match="no protection against entity expansion"):
        parse.assert_xml_parser_is_safe()


# Bounded text ------------------------------------------------------------------------------------


def entity_feed(*, value: str, references: str, one_line: bool = False) -> bytes:
    """An RSS feed declaring the entity ``e`` as `value`, its one item's description being `references`."""
    break_ = "" if one_line else "\n"
    return (
        f'<?xml version="1.0"?>{break_}<!DOCTYPE rss [{break_}<!ENTITY e "{value}">{break_}]>{break_}'
        '<rss version="2.0"><channel><title>c</title><item><title>Item</title>'
        f"<link>https://news.example.org/1</link><description>{references}</description></item></channel></rss>"
    ).encode()


def test_an_entry_longer_than_the_entry_limit_keeps_its_title_and_summary_and_loses_the_end_of_its_content():
    content = "<p>" + "Every word of a very long report. " * 40_000 + "</p>"
    body = (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        "<entry><title>The long report</title><link href='https://news.example.org/long'/>"
        "<summary>What the report says.</summary>"
        f'<content type="html">{html_escape(content)}</content></entry>'
        "<entry><title>A short one</title><link href='https://news.example.org/short'/>"
        "<summary>Short.</summary></entry></feed>"
    ).encode()

    feed = parse_feed(content=body, url=FEED_URL)

    long_entry, short_entry = feed.entries
    assert (long_entry.title, long_entry.summary_html) == ("The long report", "What the report says.")
    assert content.startswith(long_entry.content_html)
    kept = len(long_entry.title) + len(long_entry.summary_html) + len(long_entry.content_html)
    assert kept == parse.MAX_ENTRY_TEXT_CHARS == 1_000_000
    assert short_entry.summary_html == "Short."
    assert "1 entry was longer than 1,000,000 characters of text and cut to that length" in feed.problem


def test_json_feed_items_are_held_to_the_same_entry_limit(monkeypatch):
    monkeypatch.setattr(parse, "MAX_ENTRY_TEXT_CHARS", 1_000)
    items = [{"id": str(n), "url": f"https://news.example.org/{n}", "content_text": "word " * 500} for n in range(3)]
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": items}).encode()

    feed = parse_feed(content=body, url=FEED_URL)

    assert [len(entry.content_html) for entry in feed.entries] == [1_000, 1_000, 1_000]
    assert feed.problem == "3 entries were longer than 1,000 characters of text and cut to that length"


def test_a_feed_holding_more_text_than_the_feed_limit_is_refused_with_the_sizes(monkeypatch):
    monkeypatch.setattr(feedparser_patches, "MAX_FEED_TEXT_CHARS", 50_000)
    body = rss("".join(f"<item><title>{n}</title><description>{'x' * 20_000}</description></item>" for n in range(3)))

    with pytest.raises(FeedParseError, match=r"The feed is 60,\d{3} bytes, more than the 50,000 characters"):
        parse_feed(content=body, url=FEED_URL)


@pytest.mark.parametrize("one_line", [False, True], ids=["DTD on its own lines", "DTD on one line"])
def test_entity_references_are_counted_before_parsing_against_the_feed_limit(monkeypatch, one_line):
    monkeypatch.setattr(feedparser_patches, "MAX_FEED_TEXT_CHARS", 100_000)
    value = "x" * 32

    within = parse_feed(content=entity_feed(value=value, references="&e;" * 2_000, one_line=one_line), url=FEED_URL)
    with pytest.raises(FeedParseError) as refused:
        parse_feed(content=entity_feed(value=value, references="&e;" * 4_000, one_line=one_line), url=FEED_URL)

    assert within.entries[0].summary_html == value * 2_000
    assert str(refused.value).startswith(
        "The feed would expand to more than 100,000 characters of text: 4,000 references to its entities (&e;) "
        "add up to 120,000 characters"
    )
    assert "refused" in str(refused.value)


def test_references_without_a_semicolon_which_the_lenient_parser_expands_are_counted_too(monkeypatch):
    monkeypatch.setattr(feedparser_patches, "MAX_FEED_TEXT_CHARS", 100_000)

    with pytest.raises(FeedParseError, match="4,000 references to its entities"):
        parse_feed(content=entity_feed(value="x" * 32, references="&e " * 4_000), url=FEED_URL)


def test_a_long_entity_in_a_doctype_on_one_line_is_not_expanded():
    # feedparser only rewrites a DOCTYPE that starts a line; this one used to reach expat as written, and
    # expat (which only objects to a hundredfold amplification) expanded 1 MB of such a feed to 83 MB.
    feed = parse_feed(content=entity_feed(value="y" * 250, references="&e;" * 1_000, one_line=True), url=FEED_URL)

    assert "y" not in feed.entries[0].summary_html
    assert "undefined entity" in feed.problem


def test_parameter_entities_never_declare_anything_for_the_parser():
    declares_e = "&#60;!ENTITY e '" + "y" * 1_000 + "'&#62;"
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY % p "{declares_e}"> %p;]>'
        '<rss version="2.0"><channel><title>c</title><item><title>&e;&e;</title>'
        "<link>https://news.example.org/1</link></item></channel></rss>"
    ).encode()

    assert parse_feed(content=body, url=FEED_URL).entries[0].title == "&e;&e;"


@pytest.mark.parametrize(
    ("before_declaration", "after_declaration"),
    [("\ufeff", ""), ("", '<!-- a <b>comment</b> before the DOCTYPE --><?xml-stylesheet href="s.xsl"?>\n')],
    ids=["byte order mark", "comment and processing instruction"],
)
def test_the_doctype_is_found_where_expat_finds_it(before_declaration, after_declaration):
    feed = entity_feed(value="y" * 250, references="&e;&e;", one_line=True)
    body = before_declaration.encode() + feed.replace(b"?>", b"?>" + after_declaration.encode(), 1)

    assert "y" not in parse_feed(content=body, url=FEED_URL).entries[0].summary_html


def test_an_unterminated_doctype_is_refused():
    body = b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e "y"><rss version="2.0"><channel></channel></rss>'

    with pytest.raises(FeedParseError, match="DOCTYPE declaration never ends"):
        parse_feed(content=body, url=FEED_URL)


def test_entities_a_feed_declares_are_kept_up_to_a_number():
    kept = feedparser_patches.MAX_ENTITY_DECLARATIONS
    declarations = "".join(f'<!ENTITY e{n} "{n}">' for n in range(kept + 1))
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [{declarations}]><rss version="2.0"><channel><title>c</title>'
        f"<item><title>&e0;-&e{kept - 1};-&e{kept};</title>"
        "<link>https://news.example.org/1</link></item></channel></rss>"
    ).encode()

    assert parse_feed(content=body, url=FEED_URL).entries[0].title == f"0-{kept - 1}-&e{kept};"
