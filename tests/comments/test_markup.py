"""Comment text becomes safe HTML once, at write time: a small Markdown subset, linked URLs, one sanitiser."""

import re

import pytest

from comments.markup import count_links, fingerprint, render_comment
from tests.conftest import shared_data

EXECUTABLE = [
    re.compile(r"<\s*script", re.I),
    re.compile(r"<\s*style", re.I),
    re.compile(r"<\s*(iframe|svg|math|form|object|embed|img)\b", re.I),
    re.compile(r"<[^>]*\son\w+\s*=", re.I),
    re.compile(r"<[^>]*\s(href|src|action|formaction|xlink:href)\s*=\s*[\"']?\s*(javascript|vbscript|data):", re.I),
]


def assert_inert(html: str) -> None:
    for pattern in EXECUTABLE:
        assert not pattern.search(html), f"{pattern.pattern} survived in {html!r}"


def test_markdown_subset_renders_emphasis_quotes_lists_and_inline_code():
    html = render_comment("Some *emphasis* and **strength**.\n\n> quoted\n\n- one\n- two\n\n1. first\n\nrun `ls -l`")

    assert "<em>emphasis</em>" in html
    assert "<strong>strength</strong>" in html
    assert "<blockquote>" in html
    assert "<ul>" in html and "<ol>" in html
    assert "<code>ls -l</code>" in html


def test_single_line_breaks_are_kept():
    assert "first<br>" in render_comment("first\nsecond")


def test_bare_urls_become_links_with_nofollow_ugc_noopener():
    html = render_comment("see https://example.org/report and www.example.net")

    assert '<a href="https://example.org/report" rel="nofollow ugc noopener">' in html
    assert '<a href="http://www.example.net" rel="nofollow ugc noopener">' in html


def test_markdown_links_get_the_same_rel():
    html = render_comment("[the report](https://example.org/r)")

    assert html == '<p><a href="https://example.org/r" rel="nofollow ugc noopener">the report</a></p>\n'


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[click](vbscript:msgbox(1))",
        '<a href="javascript:alert(1)">x</a>',
        "<style>body{display:none}</style>",
        "<iframe src=https://evil.example></iframe>",
    ],
)
def test_raw_html_and_dangerous_links_are_shown_as_text_or_dropped(text):
    assert_inert(render_comment(text))


def test_raw_html_is_escaped_not_interpreted():
    assert "&lt;b&gt;bold&lt;/b&gt;" in render_comment("<b>bold</b>")


def test_headings_images_and_code_blocks_are_outside_the_subset():
    html = render_comment("# Title\n\n![alt](https://example.org/i.png)\n\n    indented code")

    assert "<h1>" not in html
    assert "<img" not in html
    assert "<pre>" not in html


def test_links_are_counted_in_the_rendered_html():
    assert count_links(render_comment("https://a.example.org and [b](https://b.example.org) and c")) == 2


def test_fingerprint_ignores_case_spacing_and_unicode_form():
    assert fingerprint("Hello   World") == fingerprint("hello world")
    assert fingerprint("ﬁne") == fingerprint("fine")
    assert fingerprint("hello world") != fingerprint("hello there")


def test_no_xss_payload_survives_comment_rendering():
    payloads = shared_data("xss/payloadbox_xss-payload-list.txt").read_text(errors="replace").splitlines()
    assert len(payloads) > 6000

    for payload in payloads:
        assert_inert(render_comment(payload))
        # The same payload as the target of a Markdown link.
        assert_inert(render_comment(f"[x]({payload})"))
