"""Nothing executable survives the sanitiser: the HTML of hostile feed corpora and thousands of XSS payloads
come out with no script or style, no event handler and no script-bearing URL.

The output is parsed the way a browser parses it (the HTML5 algorithm, html5lib as vendored by bleach,
and lxml as a second opinion) and every element and attribute is checked against the allowlist.
"""

import re

import pytest
from bleach._vendor import html5lib
from lxml import html as lxml_html

from newsreader.sanitize import ALLOWED_ATTRIBUTES, ALLOWED_PROTOCOLS, ALLOWED_TAGS, sanitize_html
from stories.importing.parse import FeedParseError, parse_feed
from tests.conftest import shared_data

# Browsers drop ASCII whitespace and control characters inside a URL scheme (java\tscript: runs).
URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")
# What a URL parser takes as a scheme; anything else before a colon makes the URL a relative path.
URL_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "xlink:href", "background", "poster", "data"})
ADDED_BY_SANITISER = frozenset({"rel"})


def executable_parts(fragment: str) -> list[str]:
    """Everything in `fragment` outside the allowlist or able to run script, as a browser would see it."""
    problems = []
    trees = [html5lib.parseFragment(fragment, treebuilder="etree", namespaceHTMLElements=False)]
    if fragment.strip():
        trees.append(lxml_html.fragment_fromstring(fragment, create_parent="div"))
    for tree in trees:
        for element in tree.iter():
            if element is tree or not isinstance(element.tag, str):
                continue
            tag = element.tag.lower()
            if tag not in ALLOWED_TAGS:
                problems.append(f"<{tag}> element")
            for name, value in element.attrib.items():
                name = name.lower()
                allowed = name in ALLOWED_ATTRIBUTES.get(tag, ()) or name in ADDED_BY_SANITISER
                if name.startswith("on") or name == "style" or not allowed:
                    problems.append(f"{name} attribute on <{tag}>")
                if name in URL_ATTRIBUTES or name in ALLOWED_ATTRIBUTES.get(tag, ()):
                    scheme = URL_SCHEME.match(URL_NOISE.sub("", value).lower())
                    if scheme and scheme.group(1) not in ALLOWED_PROTOCOLS:
                        problems.append(f"{scheme.group(1)}: URL in {name} on <{tag}>")
    return problems


def entry_html_of(relative: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted(shared_data(relative).rglob("*.xml")):
        try:
            feed = parse_feed(content=path.read_bytes(), url="http://example.com/feed.xml")
        except FeedParseError:
            continue
        for entry in feed.entries:
            found.extend((path.name, html) for html in (entry.summary_html, entry.content_html) if html)
    return found


@pytest.mark.parametrize(
    "dangerous",
    [
        "<script>alert(1)</script>",
        "<style>body{}</style>",
        '<img src="x" onerror="alert(1)">',
        '<a href="java&#x09;script:alert(1)">x</a>',
        '<a href=" JAVASCRIPT:alert(1)">x</a>',
        '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>',
        '<a href="vbscript:msgbox(1)">x</a>',
        '<p style="background:url(javascript:alert(1))">x</p>',
        "<svg><animate onbegin=alert(1)></svg>",
    ],
)
def test_the_check_itself_catches_executable_html(dangerous):
    assert executable_parts(dangerous)


def test_the_check_accepts_what_the_allowlist_allows():
    assert (
        executable_parts('<p>Hi <a href="https://x.example/a:b" rel="nofollow">x</a> <abbr title="t">T</abbr></p>')
        == []
    )


@pytest.mark.parametrize(
    ("relative", "at_least"),
    [("feeds/wellformed/feedparser/sanitize", 900), ("feeds/wellformed/feedvalidator_html_security", 150)],
)
def test_feed_html_from_hostile_corpora_comes_out_harmless(relative, at_least):
    fragments = entry_html_of(relative)
    assert len(fragments) >= at_least

    failures = [
        f"{name}: {problems} from {html[:120]!r}"
        for name, html in fragments
        if (problems := executable_parts(sanitize_html(html)))
    ]

    assert not failures, "\n".join(failures[:30])


def test_xss_payloads_come_out_harmless():
    payloads = shared_data("xss/payloadbox_xss-payload-list.txt").read_text(encoding="utf-8", errors="replace")
    lines = [line for line in payloads.splitlines() if line.strip()]
    assert len(lines) >= 6000

    failures = [
        f"{problems} from {payload[:120]!r}"
        for payload in lines
        if (problems := executable_parts(sanitize_html(payload)))
    ]

    assert not failures, "\n".join(failures[:30])
