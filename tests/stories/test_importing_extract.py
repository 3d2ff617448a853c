"""Full-text extraction: a page's main text as simple HTML with its metadata, the feed's text kept when
extraction fails or finds less, no network use, and the quality measured on real saved pages."""

from datetime import date

import pytest
from django.core.management import CommandError, call_command

from stories.importing.extract import ExtractedArticle, choose_body, extract_article
from stories.management.commands.evaluate_extraction import evaluate_extraction
from tests.conftest import shared_data
from tests.stories.test_importing_parse import network_events, watching_io

PARAGRAPH = (
    "The harbour authority said on Tuesday that the new ferry terminal would open in the spring, "
    "after two years of building work that closed the old quay to passengers and freight alike. "
)

ARTICLE_PAGE = f"""<!DOCTYPE html>
<html lang="en"><head>
<meta charset="utf-8">
<title>New ferry terminal to open in spring | Coast Times</title>
<meta property="og:title" content="New ferry terminal to open in spring">
<meta property="og:image" content="/images/terminal.jpg">
<meta property="og:image:alt" content="The new terminal seen from the water">
<meta name="author" content="Rita Moss">
<meta property="article:published_time" content="2025-02-18T09:00:00Z">
</head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/sport">Sport pages and results</a></li></ul></nav>
<header><p>Subscribe to the Coast Times newsletter today</p></header>
<main><article>
<h1>New ferry terminal to open in spring</h1>
<p>{PARAGRAPH * 2}</p>
<h2>What changes for passengers</h2>
<p>{PARAGRAPH} Passengers can read <a href="/timetables/2025">the new timetables</a> online.</p>
<ul><li>Three more sailings every weekday to the islands</li>
<li>A covered waiting hall with seats for two hundred</li></ul>
<blockquote>We have waited a long time for this terminal, said one islander who travels daily.</blockquote>
<p>{PARAGRAPH * 2} Engineers used <code>tidal_model</code> to plan the berths.</p>
<p><a href="javascript:alert(1)">A link that does nothing</a> remains text.</p>
</article></main>
<aside><h3>Most read</h3><ul><li>Celebrity chef opens seafood bar on the pier</li></ul></aside>
<footer><p>Copyright Coast Times Media Group, all rights reserved</p></footer>
</body></html>"""


def extract_page() -> ExtractedArticle:
    article = extract_article(html=ARTICLE_PAGE.encode(), url="https://coast.example.com/news/ferry-terminal")
    assert article is not None
    return article


def test_main_text_comes_out_as_simple_html_without_the_page_furniture():
    article = extract_page()

    assert article.body_html.startswith("<p>The harbour authority")
    assert "<h2>What changes for passengers</h2>" in article.body_html
    assert "<li>Three more sailings every weekday to the islands</li>" in article.body_html
    assert "<blockquote>We have waited" in article.body_html
    assert "<code>tidal_model</code>" in article.body_html
    for furniture in ("Sport pages and results", "newsletter", "Celebrity chef", "all rights reserved"):
        assert furniture not in article.text


def test_links_are_absolute_and_script_links_lose_their_target():
    article = extract_page()

    assert '<a href="https://coast.example.com/timetables/2025">the new timetables</a>' in article.body_html
    assert "javascript:" not in article.body_html
    assert "A link that does nothing" in article.text


def test_metadata_and_the_sharing_image_come_with_the_text():
    article = extract_page()

    assert article.title == "New ferry terminal to open in spring"
    assert article.author == "Rita Moss"
    assert article.published == date(2025, 2, 18)
    assert article.image_url == "https://coast.example.com/images/terminal.jpg"
    assert article.image_alt == "The new terminal seen from the water"


@pytest.mark.parametrize(
    "page",
    [b"", "", b"\x00\x01\x02\x03", "<html><body><nav><a href='/'>Home</a></nav></body></html>", "plain words"],
)
def test_pages_without_main_text_give_none(page):
    assert extract_article(html=page, url="https://coast.example.com/") is None


def test_feed_text_is_kept_when_extraction_fails_or_finds_less():
    feed_html = "<p>" + "A full story from the feed itself. " * 40 + "</p>"
    short = ExtractedArticle(body_html="<p>Cookie notice: accept all</p>", text="Cookie notice: accept all")
    long = extract_page()

    assert choose_body(feed_html, None) == feed_html
    assert choose_body(feed_html, short) == feed_html
    assert choose_body("<p>Teaser only.</p>", long) == long.body_html
    assert choose_body("", long) == long.body_html


def test_extraction_never_reaches_the_network():
    pages = sorted(shared_data("articles/trafilatura_eval/html").glob("*.html"))[:25]

    with watching_io() as seen:
        extracted = [extract_article(html=page.read_bytes(), url="https://example.com/article") for page in pages]

    assert network_events(seen) == []
    assert sum(article is not None for article in extracted) >= 20


def test_extraction_quality_on_saved_pages_stays_above_what_we_measured():
    """Measured with trafilatura 2.3.1: 93.1% of must-have snippets found, 90.9% of boilerplate kept out."""
    scores = evaluate_extraction(shared_data("articles/trafilatura_eval"))

    assert scores.articles == 100
    assert scores.found_share >= 0.90
    assert scores.kept_out_share >= 0.87


def test_evaluate_extraction_command_prints_its_scores(capsys, tmp_path):
    call_command("evaluate_extraction", str(shared_data("articles/trafilatura_eval")))
    output = capsys.readouterr().out

    assert "Must-have found:" in output
    assert "Boilerplate kept out:" in output
    assert "articles a second" in output
    with pytest.raises(CommandError, match=r"no evaldata_subset\.json"):
        call_command("evaluate_extraction", str(tmp_path))
