"""HTML already in the form bleach writes skips bleach's parse, and comes out of the sanitiser exactly as it did
when bleach parsed it: checked on generated and mutated HTML, on the feed corpora and on XSS payloads."""

import random

import pytest

from newsreader import sanitize
from newsreader.sanitize import COMMENT_LINK_REL, STORY_LINK_REL, sanitize_html
from stories.importing.parse import FeedParseError, parse_feed
from tests.conftest import shared_data

TEXT_PIECES = [
    "The harbour",
    " ferries",
    " and cranes",
    "\n",
    "\t",
    " ",
    "“quoted”",
    '"plain quotes"',
    "it's",
    "café ",
    "Zürich",
    "日本語",
    "\u00a0",
    "\u200b",
    "\ufeff",
    "🙂",
    "&amp;",
    "&lt;b&gt;",
    "&quot;",
    "&nbsp;",
    "&mdash;",
    "&#8217;",
    "&#x2019;",
    "&eacute;",
    "&AMP;",
    "&#39;",
]
URLS = [
    "https://quay.example.org/",
    "http://quay.example.org/a/b?c=1&amp;d=2#top",
    "https://quay.example.org/%C3%A9t%C3%A9/(1)",
    "mailto:desk@quay.example.org",
    "https://quay.example.org/a;b,c=d+e*f!g$h@i~j'k",
]
TITLES = ["", "Berth", "A &amp; B", "“Tide” tables", "it's", "&nbsp;x", "line\nbreak"]
INLINE = ["a", "abbr", "b", "cite", "code", "em", "i", "q", "strong", "sub", "sup"]


def text(rng: random.Random) -> str:
    return "".join(rng.choice(TEXT_PIECES) for _ in range(rng.randint(1, 4)))


def inline(rng: random.Random, depth: int, open_inline: frozenset[str] = frozenset()) -> str:
    pieces = []
    for _ in range(rng.randint(1, 3)):
        choices = [tag for tag in INLINE if tag not in open_inline]
        if depth <= 0 or rng.random() < 0.5 or not choices:
            pieces.append(text(rng) if rng.random() < 0.85 else "<br>")
            continue
        tag = rng.choice(choices)
        attributes = ""
        if tag == "a":
            named = [f' href="{rng.choice(URLS)}"', f' title="{rng.choice(TITLES)}"', ' rel="nofollow"']
            attributes = "".join(rng.sample(named, rng.randint(0, 3)))
        elif tag == "abbr" and rng.random() < 0.7:
            attributes = f' title="{rng.choice(TITLES)}"'
        pieces.append(f"<{tag}{attributes}>{inline(rng, depth - 1, open_inline | {tag})}</{tag}>")
    return "".join(pieces)


def flow(rng: random.Random, depth: int) -> str:
    pieces = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["p", "h", "pre", "list", "quote", "hr", "inline", "space"])
        if kind == "p":
            pieces.append(f"<p>{inline(rng, 3)}</p>")
        elif kind == "h":
            level = rng.choice(["h2", "h3", "h4"])
            pieces.append(f"<{level}>{inline(rng, 2)}</{level}>")
        elif kind == "pre":
            pieces.append(f"<pre>{inline(rng, 1).lstrip(chr(10))}</pre>")
        elif kind == "list" and depth > 0:
            tag = rng.choice(["ul", "ol"])
            items = "".join(f"<li>{flow(rng, depth - 1)}</li>" + rng.choice(["", "\n", " "]) for _ in range(3))
            pieces.append(f"<{tag}>{rng.choice(['', chr(10)])}{items}</{tag}>")
        elif kind == "quote" and depth > 0:
            pieces.append(f"<blockquote>{flow(rng, depth - 1)}</blockquote>")
        elif kind == "hr":
            pieces.append("<hr>")
        elif kind == "space":
            pieces.append(rng.choice(["\n", " ", "\n\n"]))
        else:
            pieces.append(inline(rng, 2))
    return "".join(pieces)


def bleach_alone(html: str) -> str:
    return sanitize._bleach_cleaner.clean(html)


def sanitised_through_bleach(html: str, link_rel: str = STORY_LINK_REL) -> str:
    """The sanitiser as it was: bleach parses every input, nh3 cleans what bleach returns."""
    return sanitize._nh3_cleaner(link_rel).clean(bleach_alone(html)) if html else ""


def test_html_in_the_form_bleach_writes_is_what_bleach_returns_without_parsing():
    rng = random.Random(20260101)
    documents = [flow(rng, 2) for _ in range(1500)]

    recognised = [(html, sanitize._bleach_result_without_parsing(html)) for html in documents]

    assert all(first_pass is not None for _, first_pass in recognised)
    mismatches = [(html, first_pass) for html, first_pass in recognised if first_pass != bleach_alone(html)]
    assert not mismatches, mismatches[:3]


def test_links_keep_their_place_and_lose_only_rel_in_the_first_pass():
    html = '<p><a href="https://quay.example.org/" rel="nofollow" title="Quay">Quay</a></p>'

    assert sanitize._bleach_result_without_parsing(html) == bleach_alone(html)
    assert (
        sanitize._bleach_result_without_parsing(html)
        == '<p><a href="https://quay.example.org/" title="Quay">Quay</a></p>'
    )
    assert sanitize_html(html) == sanitised_through_bleach(html)


@pytest.mark.parametrize(
    "html",
    [
        "<pre>\nThe parser drops this line break</pre>",
        "tides > currents",
        "line\r\nbreak",
        "bell\x07",
        "<p><p>nested</p></p>",
        "<p><ul><li>list in a paragraph</li></ul></p>",
        "<b><b>twice bold</b></b>",
        '<a href="https://quay.example.org/"><a href="https://quay.example.org/b">link in a link</a></a>',
        "<li>item without a list</li>",
        "<ul>text in a list<li>item</li></ul>",
        "<h2><h3>heading in a heading</h3></h2>",
        "<em><p>block in inline</p></em>",
        "<P>upper case</P>",
        "<br/>",
        "<hr/>",
        "</br>",
        "<p>unclosed",
        "<p>mis</b>matched</p>",
        "<p class='note'>attribute</p>",
        '<p title="x">title on p</p>',
        '<a href="javascript:alert(1)">script link</a>',
        '<a href="//quay.example.org/">scheme-relative</a>',
        '<a href="https://[::1">bracket</a>',
        '<a href="https://quay.example.org/a b">space</a>',
        '<a href="https://quay.example.org/é">non-ASCII link</a>',
        '<a href="https://quay.example.org/" href="https://other.example.org/">twice</a>',
        '<a title="&mdash;">reference bleach escapes in attributes</a>',
        "&unknownentity;",
        "&#0;",
        "&#x80;",
        "a & b",
        "<script>alert(1)</script>",
        "<!-- comment -->",
        "<img src=x>",
        "<span>span</span>",
    ],
)
def test_html_bleach_would_change_is_left_to_bleach(html):
    assert sanitize._bleach_result_without_parsing(html) is None
    assert sanitize_html(html) == sanitised_through_bleach(html)


NOISE = ["<", ">", "&", '"', "'", "/", "=", "\n", "\r", "\x00", "\x0c", "<p>", "</p>", "<b>", "</b>", "<li>", "</li>"]
NOISE += ["<ul>", "</ul>", "<pre>", "<pre>\n", '<a href="https://x.example/">', "</a>", "<br>", "<hr>", "&amp;"]
NOISE += ["&mdash;", "&#0;", "<script>", "<!--", "-->", "<h2>", "</h3>", "<blockquote>", ' rel="x"', "\u00a0"]


def test_mutated_html_is_either_left_to_bleach_or_exactly_what_bleach_returns():
    rng = random.Random(7)
    recognised = left_to_bleach = 0
    for _ in range(4000):
        html = flow(rng, 2)
        for _ in range(rng.randint(1, 3)):
            at = rng.randint(0, len(html))
            if rng.random() < 0.3 and html:
                html = html[:at] + html[at + rng.randint(1, 5) :]
            else:
                html = html[:at] + rng.choice(NOISE) + html[at:]
        first_pass = sanitize._bleach_result_without_parsing(html)
        if first_pass is None:
            left_to_bleach += 1
            continue
        recognised += 1
        assert first_pass == bleach_alone(html), html

    assert recognised > 200
    assert left_to_bleach > 500


def feed_html() -> list[str]:
    found = []
    for path in sorted(shared_data("feeds").rglob("*")):
        if not path.is_file():
            continue
        try:
            feed = parse_feed(content=path.read_bytes(), url="http://example.com/feed.xml")
        except FeedParseError:
            continue
        for entry in feed.entries:
            found.extend(html for html in (entry.summary_html, entry.content_html) if html)
    return found


def test_feed_corpora_and_xss_payloads_sanitise_as_they_did_when_bleach_parsed_everything():
    payloads = shared_data("xss/payloadbox_xss-payload-list.txt").read_text(encoding="utf-8", errors="replace")
    inputs = feed_html() + [line for line in payloads.splitlines() if line.strip()]
    assert len(inputs) > 7000

    differences = [html for html in inputs if sanitize_html(html) != sanitised_through_bleach(html)]
    differences += [
        html
        for html in inputs[::5]
        if sanitize_html(html, link_rel=COMMENT_LINK_REL) != sanitised_through_bleach(html, COMMENT_LINK_REL)
    ]

    assert not differences, differences[:5]
    assert sum(sanitize._bleach_result_without_parsing(html) is not None for html in inputs) > 200


def test_stored_bodies_are_recognised_so_sanitising_them_again_skips_bleach():
    bodies = [html for html in feed_html() if html.strip()]
    stored = [sanitize_html(html) for html in bodies]

    recognised = [body for body in stored if body and sanitize._bleach_result_without_parsing(body) is not None]

    assert len(recognised) > 0.9 * len([body for body in stored if body])
    assert all(sanitize_html(body) == sanitised_through_bleach(body) for body in recognised)
