"""Our patches to feedparser: applied once, refused on a feedparser they were not written for, and each
one's effect visible on a small feed. These fail when a feedparser upgrade changes what they rely on."""

import io
import re
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest

from stories.importing import feedparser_patches

ROOT = Path(__file__).resolve().parents[2]
MEDIA_RSS = 'xmlns:media="http://search.yahoo.com/mrss/"'


def parsed(body: str) -> feedparser.FeedParserDict:
    return feedparser.parse(io.BytesIO(body.encode()), response_headers={"content-type": "application/xml"})


def rss(items: str, *, doctype: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n{doctype}<rss version="2.0" {MEDIA_RSS}><channel>'
        f"<title>Harbour news</title><link>https://harbour.example.org/</link>{items}</channel></rss>"
    )


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_patches_are_written_for_the_feedparser_pinned_in_requirements_and_installed():
    pins = re.findall(r"^feedparser==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)

    assert pins == [feedparser_patches.FEEDPARSER_VERSION]
    assert feedparser.__version__ == feedparser_patches.FEEDPARSER_VERSION


def test_every_function_the_patches_replace_still_takes_the_parameters_they_expect():
    feedparser_patches.check_feedparser()

    assert feedparser_patches.is_applied()


def test_an_unpatched_feedparser_still_has_each_function_the_patches_replace():
    checked = run_python(
        "from stories.importing import feedparser_patches as patches\n"
        "patches.check_feedparser()\n"
        "print(patches.is_applied())\n"
    )

    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "False"


def test_another_feedparser_version_is_refused_and_left_unpatched():
    refused = run_python(
        "import feedparser\n"
        "feedparser.__version__ = '6.1.0'\n"
        "from stories.importing import feedparser_patches as patches\n"
        "try:\n"
        "    patches.apply()\n"
        "except patches.FeedparserMismatch as error:\n"
        "    print(error)\n"
        "print(patches.is_applied())\n"
    )

    assert refused.returncode == 0, refused.stderr
    message, applied = refused.stdout.strip().splitlines()
    assert message.startswith("feedparser 6.1.0 is installed, but stories/importing/feedparser_patches.py was")
    assert "requirements.txt" in message
    assert applied == "False"


def test_a_replaced_function_whose_parameters_changed_is_refused(monkeypatch):
    monkeypatch.setitem(feedparser_patches._originals, "_end_media_credit", lambda self, attrs_d: None)

    with pytest.raises(feedparser_patches.FeedparserMismatch, match=r"_end_media_credit takes \(self, attrs_d\)"):
        feedparser_patches.check_feedparser()


def test_applying_twice_patches_once():
    replace_doctype = feedparser.api.replace_doctype

    feedparser_patches.apply()

    assert feedparser.api.replace_doctype is replace_doctype
    assert feedparser_patches._originals["replace_doctype"] is not replace_doctype


def test_a_caption_and_title_inside_media_content_stay_with_the_picture_not_the_story():
    result = parsed(
        rss(
            "<item><title>Ferry timetable changes</title><description>Winter sailings start Monday.</description>"
            '<media:content url="https://harbour.example.org/ferry.jpg" medium="image">'
            "<media:title>The morning ferry</media:title>"
            "<media:description>The ferry leaving at dawn</media:description>"
            "<media:credit>Photo: Ana Ruiz</media:credit></media:content></item>"
        )
    )

    entry = result.entries[0]
    picture = entry.media_content[0]
    assert entry.title == "Ferry timetable changes"
    assert entry.summary == "Winter sailings start Monday."
    assert picture["newsreader_description"] == "The ferry leaving at dawn"
    assert picture["newsreader_title"] == "The morning ferry"
    assert picture["newsreader_credit"] == "Photo: Ana Ruiz"


def test_a_credit_outside_any_picture_belongs_to_every_picture_of_the_item():
    result = parsed(
        rss(
            "<item><title>Storm</title><media:credit>Harbour Press</media:credit>"
            "<media:description>Pictures of the storm</media:description>"
            '<media:thumbnail url="https://harbour.example.org/storm.jpg"/></item>'
        )
    )

    entry = result.entries[0]
    assert entry.title == "Storm"
    assert "summary" not in entry
    assert entry["newsreader_media_credit"] == "Harbour Press"
    assert entry["newsreader_media_description"] == "Pictures of the storm"
    assert entry.media_thumbnail[0]["url"] == "https://harbour.example.org/storm.jpg"


def test_long_entity_declarations_are_dropped_and_short_ones_kept():
    long_value = "x" * (feedparser_patches.MAX_ENTITY_VALUE_LENGTH + 1)
    doctype = f'<!DOCTYPE rss [\n<!ENTITY port "Harbour">\n<!ENTITY long "{long_value}">\n]>\n'

    result = parsed(rss("<item><title>&port; &long;</title></item>", doctype=doctype))

    assert result.entries[0].title.startswith("Harbour ")
    assert long_value not in result.entries[0].title


def test_a_feed_whose_entities_would_expand_past_the_limit_is_refused_inside_feedparser(monkeypatch):
    monkeypatch.setattr(feedparser_patches, "MAX_FEED_TEXT_CHARS", 10_000)
    doctype = f'<!DOCTYPE rss [\n<!ENTITY e "{"y" * 30}">\n]>\n'

    with pytest.raises(feedparser_patches.FeedRefused, match=r"^The feed would expand to more than 10,000 characters"):
        parsed(rss(f"<item><title>{'&e;' * 1_000}</title></item>", doctype=doctype))


def test_html_entities_the_strict_parser_skips_are_put_back():
    # RSS 0.91's DTD defines &eacute; and friends; we never load it, so expat skips them.
    body = (
        '<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        '"http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel><title>Quay</title>'
        "<link>https://harbour.example.org/</link><item><title>Caf&eacute; on the quay</title></item></channel></rss>"
    )

    result = parsed(body)

    assert result.bozo == 0
    assert result.entries[0].title == "Café on the quay"
