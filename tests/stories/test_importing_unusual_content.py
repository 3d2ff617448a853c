"""Feeds and pages that do not look like an English blog: entries without a link, articles in Japanese,
pages whose content is a table, and a subscription list given where a feed was expected."""

import pytest

from stories.importing import service
from stories.importing.extract import extract_article, word_count
from stories.importing.parse import FeedParseError, parse_feed
from stories.models import ImportRun, Story
from tests.factories import SourceFactory, StoryFactory
from tests.httpserver import Reply

pytestmark = pytest.mark.django_db

LINKLESS_ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Lighthouse Keepers' Log</title>
  <id>urn:uuid:5d0e8f0a-1111-4c2e-9a57-0a1b2c3d4e5f</id>
  <updated>2025-03-02T06:00:00Z</updated>
  <author><name>Keeper on duty</name></author>
  <entry>
    <id>urn:uuid:5d0e8f0a-2222-4c2e-9a57-0a1b2c3d4e5f</id>
    <title>Fog horn sounded for six hours</title>
    <updated>2025-03-02T06:00:00Z</updated>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">
      <p>Fog rolled in from the south-west before midnight and the horn sounded until dawn.</p>
      <p>Two fishing boats waited outside the bar until the visibility improved.</p>
    </div></content>
  </entry>
</feed>"""

DESCRIPTION_ONLY_RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="0.92"><channel>
  <title>Village Noticeboard</title>
  <link>https://noticeboard.example.org/</link>
  <description>Notes pinned on the board by the post office</description>
  <item><description>The post office closes early on Thursday for the harvest fair.</description></item>
  <item><description>A grey cat was found near the mill; ask at the bakery.</description></item>
</channel></rss>"""

JAPANESE_PARAGRAPHS = [
    "港町の市役所は火曜日、新しいフェリーターミナルを来年の春に開業すると発表した。"
    "旧桟橋は二年前から工事のために閉鎖されており、島へ渡る人々は仮設の乗り場を使ってきた。",
    "新しいターミナルには二百人が座れる待合室が設けられ、雨の日でも屋根の下で船を待つことができる。"
    "平日の便は三本増え、朝早くに島から本土へ通う学生や漁業関係者の負担が軽くなるという。",
    "毎日船で通勤しているという島の住民は、長い間この日を待っていたと話した。"
    "一方で、工事の費用が当初の見込みを上回ったことについて、市議会では説明を求める声も出ている。",
    "市は開業に合わせて港の周辺に自転車置き場と小さな公園を整備する予定で、"
    "夏には港まつりを新しい広場で開くことも検討している。",
]

JAPANESE_PAGE = f"""<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>新しいフェリーターミナル、春に開業 | 港町新聞</title></head>
<body>
<nav><ul><li><a href="/">トップ</a></li><li><a href="/sports">スポーツ</a></li></ul></nav>
<main><article>
<h1>新しいフェリーターミナル、春に開業</h1>
{"".join(f"<p>{paragraph}</p>" for paragraph in JAPANESE_PARAGRAPHS)}
</article></main>
<footer><p>港町新聞社</p></footer>
</body></html>""".encode()

STANDINGS_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Coastal league standings after round twelve</title></head>
<body>
<nav><a href="/">Home</a> <a href="/fixtures">Fixtures</a></nav>
<main><article>
<h1>Coastal league standings after round twelve</h1>
<p>Harbour Rovers stay top of the coastal league after a narrow win on Saturday, while Mill Lane
climb two places with their third straight victory and the Lighthouse club slip into the bottom half.</p>
<table>
  <caption>Coastal league after round twelve</caption>
  <thead><tr><th>Club</th><th>Played</th><th>Won</th><th>Points</th></tr></thead>
  <tbody>
    <tr><td>Harbour Rovers</td><td>12</td><td>9</td><td>29</td></tr>
    <tr><td>Mill Lane Athletic</td><td>12</td><td>8</td><td>26</td></tr>
    <tr><td>Quayside United</td><td>12</td><td>7</td><td>23</td></tr>
    <tr><td>Lighthouse Wanderers</td><td>12</td><td>4</td><td>15</td></tr>
  </tbody>
</table>
<p>The next round is played on Saturday afternoon, with the top two meeting at the harbour ground.</p>
</article></main>
</body></html>"""

SUBSCRIPTION_LIST = b"""<?xml version="1.0" encoding="utf-8"?>
<!-- exported from another reader -->
<opml version="2.0">
  <head><title>My subscriptions</title></head>
  <body>
    <outline text="Harbour Ledger" type="rss" xmlUrl="https://ledger.example.org/feed.xml"
             htmlUrl="https://ledger.example.org/"/>
  </body>
</opml>"""


@pytest.fixture
def allow_local(settings):
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def import_from(http_server, feed: bytes, content_type: str, **source_fields) -> ImportRun:
    http_server.route("/feed.xml", Reply(body=feed, headers={"Content-Type": content_type}))
    source = SourceFactory(feed_url=http_server.url("/feed.xml"), **source_fields)
    return service.import_source(source_id=source.pk)


def test_atom_entry_without_a_link_is_stored_and_its_page_names_the_source(http_server, allow_local, client):
    run = import_from(
        http_server,
        LINKLESS_ATOM,
        "application/atom+xml",
        name="Lighthouse Keepers' Log",
        homepage_url="https://lighthouse.example.org/",
    )

    assert (run.outcome, run.new_count, run.rejected_count) == (ImportRun.Outcome.IMPORTED, 1, 0)
    story = Story.objects.get(source=run.source)
    assert story.title == "Fog horn sounded for six hours"
    assert story.original_url == ""
    assert "Two fishing boats waited outside the bar" in story.body_text
    html = client.get(story.get_absolute_url()).content.decode()
    assert "View original source" not in html
    assert '<a href="https://lighthouse.example.org/" rel="noopener">Lighthouse Keepers&#x27; Log</a>' in html


def test_rss_092_items_with_only_a_description_are_each_stored_once(http_server, allow_local, client):
    first = import_from(http_server, DESCRIPTION_ONLY_RSS, "application/rss+xml")
    source = first.source
    source.content_hash = ""  # the same body again would be skipped unread; read it again
    source.save(update_fields=["content_hash"])
    second = service.import_source(source_id=source.pk)

    assert (first.new_count, first.rejected_count) == (2, 0)
    assert (second.new_count, second.unchanged_count) == (0, 2)
    stories = Story.objects.filter(source=source).order_by("body_text")
    assert [story.body_text for story in stories] == [
        "A grey cat was found near the mill; ask at the bakery.",
        "The post office closes early on Thursday for the harvest fair.",
    ]
    assert all(story.title and story.original_url == "" for story in stories)
    html = client.get(stories[0].get_absolute_url()).content.decode()
    assert "View original source" not in html
    assert source.name in html


def test_full_text_is_not_fetched_for_a_story_without_a_link(http_server, allow_local):
    story = StoryFactory(original_url="", body_html="<p>The fog lifted at nine.</p>")

    assert service.extract_full_text(story_id=story.pk) == story
    assert http_server.requests == []


def test_japanese_article_gets_its_full_text_extracted(http_server, allow_local):
    http_server.route("/ja/ferry", Reply(body=JAPANESE_PAGE, headers={"Content-Type": "text/html; charset=utf-8"}))
    story = StoryFactory(original_url=http_server.url("/ja/ferry"), body_html=f"<p>{JAPANESE_PARAGRAPHS[0][:30]}</p>")

    service.extract_full_text(story_id=story.pk)

    story.refresh_from_db()
    for paragraph in JAPANESE_PARAGRAPHS:
        assert paragraph in story.body_text
    assert "スポーツ" not in story.body_text


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("The ferry leaves at nine", 5),
        ("新しいフェリー", 3.5),  # seven characters, about two to a word
        ("ท่าเรือใหม่", pytest.approx(8 / 3)),  # eight letters (marks above and below not counted), three a word
        ("항구 당국은 봄에 문을 연다", 5),  # Korean puts spaces between words
    ],
)
def test_words_are_counted_in_scripts_written_with_and_without_spaces(text, words):
    assert word_count(text) == words


def test_page_with_a_table_keeps_the_tables_cells():
    article = extract_article(html=STANDINGS_PAGE, url="https://league.example.org/standings")

    assert article is not None
    for cell in ("Harbour Rovers", "Mill Lane Athletic", "Lighthouse Wanderers", "Points", "29", "26"):
        assert cell in article.text
    assert "<td>Quayside United</td>" in article.body_html
    story = StoryFactory(body_html=article.body_html)
    assert "Lighthouse Wanderers" in story.body_text


def test_opml_subscription_list_given_as_a_feed_says_how_to_import_it():
    with pytest.raises(FeedParseError) as raised:
        parse_feed(content=SUBSCRIPTION_LIST, url="https://example.org/subscriptions.opml")

    message = str(raised.value)
    assert "OPML subscription list" in message
    assert "Import OPML" in message
    assert "python manage.py opml import FILE" in message
    assert "HTML page" not in message
