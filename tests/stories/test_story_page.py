"""The story page: the reference page's elements in order, metadata, 404s, fixed queries."""

import json
import re

import pytest

from stories.models import Story
from tests.conftest import view_count_queries
from tests.factories import RegionFactory, SectionFactory, SourceFactory, StoryFactory, TagFactory

pytestmark = pytest.mark.django_db

AI_NOTICE = (
    "This content was automatically generated and/or translated by AI. It may contain inaccuracies. "
    "Please refer to the original sources for verification."
)


@pytest.fixture
def reference_story():
    asia = RegionFactory(name="Asia", slug="asia")
    return StoryFactory(
        title="Harbour city bets on battery trams",
        dek="The city will replace diesel buses on two hill routes. Trams arrive next spring.",
        section=SectionFactory(name="Technology", slug="technology"),
        region=RegionFactory(name="China", slug="china", parent=asia),
        source=SourceFactory(name="Harbour Ledger"),
        body_html="<h2>The play</h2><p>Trams replace buses.</p><h2>The evidence</h2><p>Costs fell.</p>",
        image_url="/media/tram.jpg",
        image_alt="A tram on a hill street at dusk.",
        image_credit="Ana Lima",
        image_credit_url="https://photos.example.org/@ana",
        image_provider="Pexels",
        image_provider_url="https://photos.example.org/photo/1",
        ai_generated=True,
        ai_labelled=True,
        tags=[TagFactory(name="Trams", slug="trams"), TagFactory(name="Batteries", slug="batteries")],
    )


def visible_text(html: str) -> str:
    body = html.split("<main", 1)[1]
    body = re.sub(r"<script.*?</script>", " ", body, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", body)
    return " ".join(text.split())


def test_story_page_shows_reference_elements_in_order(client, reference_story):
    story = reference_story
    text = visible_text(client.get(story.get_absolute_url()).content.decode())

    expected_in_order = [
        "← Back to stories",
        "Technology",
        "Asia / China",
        "0 views",
        "1 min",
        story.title,
        story.dek,
        "Photo by Ana Lima on Pexels",
        "Harbour Ledger",
        story.published_at.strftime("%Y-%m-%d"),
        "The play",
        "The evidence",
        "Batteries",
        "Trams",
        AI_NOTICE,
        "View original source →",
        "Comments (0)",
        "Log in to comment.",
        "Loading...",
    ]
    position = 0
    for fragment in expected_in_order:
        found = text.find(fragment, position)
        assert found != -1, f"{fragment!r} missing or out of order"
        position = found + len(fragment)


def test_hero_image_has_alt_text_and_linked_credit(client, reference_story):
    html = client.get(reference_story.get_absolute_url()).content.decode()

    assert 'alt="A tram on a hill street at dusk."' in html
    assert '<a href="https://photos.example.org/@ana" rel="noopener">Ana Lima</a>' in html
    assert '<a href="https://photos.example.org/photo/1" rel="noopener">Pexels</a>' in html


def test_ai_notice_only_when_text_is_ai_generated(client):
    story = StoryFactory(ai_generated=False, ai_labelled=True)

    html = client.get(story.get_absolute_url()).content.decode()

    assert AI_NOTICE not in html
    assert "AI-labelled" in html


def test_original_source_link_opens_safely(client, reference_story):
    html = client.get(reference_story.get_absolute_url()).content.decode()

    assert f'<a href="{reference_story.original_url}" rel="noopener" target="_blank">View original source →</a>' in html


def test_tags_link_to_the_filtered_list(client, reference_story):
    html = client.get(reference_story.get_absolute_url()).content.decode()

    assert '<a href="/?tag=trams">Trams</a>' in html


def test_back_link_returns_to_the_list_the_reader_came_from(client, reference_story):
    html = client.get(reference_story.get_absolute_url(), {"section": "technology", "page": "2"}).content.decode()

    assert '<a href="/?section=technology&amp;page=2">← Back to stories</a>' in html


def test_login_link_comes_back_to_this_storys_comments(client, reference_story):
    html = client.get(reference_story.get_absolute_url()).content.decode()

    next_url = "/stories/harbour-city-bets-on-battery-trams/%23comments"
    assert f'href="/accounts/login/?next={next_url}">Log in to comment.</a>' in html


def test_page_has_canonical_open_graph_and_news_article_json_ld(client, reference_story, settings):
    html = client.get(reference_story.get_absolute_url(), {"section": "technology"}).content.decode()
    canonical = f"http://testserver{reference_story.get_absolute_url()}"

    assert f'<link rel="canonical" href="{canonical}">' in html
    assert f'<meta property="og:title" content="{reference_story.title}">' in html
    assert f'<meta property="og:site_name" content="{settings.SITE_NAME}">' in html
    assert '<meta property="og:type" content="article">' in html
    ld = json.loads(re.search(r'<script type="application/ld\+json">(.*?)</script>', html, re.S).group(1))
    assert ld["@type"] == "NewsArticle"
    assert ld["headline"] == reference_story.title
    assert ld["articleSection"] == "Technology"
    assert ld["digitalSourceType"].endswith("/trainedAlgorithmicMedia")


def test_json_ld_cannot_be_broken_out_of_by_a_title(client):
    story = StoryFactory(title="Evil </script><script>alert(1)</script> headline")

    html = client.get(story.get_absolute_url()).content.decode()

    assert "<script>alert(1)</script>" not in html


def test_human_written_story_has_no_ai_source_type(client):
    story = StoryFactory(ai_generated=False)

    html = client.get(story.get_absolute_url()).content.decode()

    assert "digitalSourceType" not in html


@pytest.mark.parametrize("status", [Story.Status.DRAFT, Story.Status.HIDDEN])
def test_unpublished_and_hidden_stories_are_not_found(client, status):
    story = StoryFactory(status=status)

    assert client.get(story.get_absolute_url()).status_code == 404


def test_unknown_story_is_not_found_with_a_helpful_page(client):
    response = client.get("/stories/no-such-story/")

    assert response.status_code == 404
    assert b"See the latest stories" in response.content


def test_story_body_is_stored_sanitised(db):
    story = StoryFactory(body_html='<p onclick="steal()">Hi<script>alert(1)</script></p><a href="javascript:x">l</a>')

    story.refresh_from_db()
    assert "onclick" not in story.body_html
    assert "<script" not in story.body_html
    assert "javascript:" not in story.body_html


def test_page_without_javascript_sorts_comments_on_the_thread_page(client, reference_story):
    html = client.get(reference_story.get_absolute_url()).content.decode()

    assert f'href="/comments/{reference_story.slug}/?sort=newest"' in html


@pytest.mark.parametrize("tag_count", [1, 12])
def test_story_page_query_count_is_fixed(client, django_assert_num_queries, settings, tag_count):
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    story = StoryFactory(tags=TagFactory.create_batch(tag_count), region=RegionFactory(parent=RegionFactory()))
    client.get(StoryFactory().get_absolute_url())  # the moderation rules, read once a while

    # the story with its source, section, region and whether others cover it; its tags; the first page of
    # comments (and without Redis, its view)
    with django_assert_num_queries(3 + view_count_queries()):
        first = client.get(story.get_absolute_url())
    # its article and the first page of its thread are kept
    with django_assert_num_queries(0):
        again = client.get(story.get_absolute_url())

    assert first.status_code == again.status_code == 200


def test_other_sources_coverage_is_listed_both_ways_in_one_more_query(client, django_assert_num_queries, settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    first = StoryFactory(title="Tram line opens", source=SourceFactory(name="Harbour Ledger"))
    StoryFactory(title="Trams run again", duplicate_of=first, source=SourceFactory(name="Valley Times"))
    StoryFactory(title="Hidden take", duplicate_of=first, status=Story.Status.HIDDEN)
    covering = StoryFactory(title="Battery trams start", duplicate_of=first, source=SourceFactory(name="Coast Post"))
    client.get(StoryFactory().get_absolute_url())  # the moderation rules, read once a while

    with django_assert_num_queries(4 + view_count_queries()):
        first_page = visible_text(client.get(first.get_absolute_url()).content.decode())
    other_page = visible_text(client.get(covering.get_absolute_url()).content.decode())

    assert "Also covered by Valley Times: Trams run again Coast Post: Battery trams start" in first_page
    assert "Hidden take" not in first_page
    assert "Also covered by Harbour Ledger: Tram line opens" in other_page


def test_story_page_reads_none_of_the_bookkeeping_columns(client, django_assert_num_queries, settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    story = StoryFactory(body_html="<p>" + "Harbour " * 2000 + "</p>")
    client.get(StoryFactory().get_absolute_url())  # the moderation rules, read once a while

    with django_assert_num_queries(3 + view_count_queries()) as queries:
        client.get(story.get_absolute_url())

    story_query = next(query["sql"] for query in queries.captured_queries if '"stories_story"."title"' in query["sql"])
    for column in ("search_vector", "body_text", "similarity_signature", "pipeline_steps", "last_error"):
        assert column not in story_query


def test_visitor_gets_the_cached_page_and_changes_invalidate_it(client, settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    story = StoryFactory(title="First title")
    client.get(story.get_absolute_url())

    cached = client.get(story.get_absolute_url())
    assert cached["X-Page-Cache"] == "hit"

    story.title = "Second title"
    story.save()
    fresh = client.get(story.get_absolute_url())
    assert "X-Page-Cache" not in fresh
    assert b"Second title" in fresh.content


@pytest.fixture
def article_kept(client, settings):
    """A story whose page was made once with the page cache off, so that its article is kept."""
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    story = StoryFactory(
        title="Ferry timetable doubles",
        section=SectionFactory(name="Transport", slug="transport"),
        tags=[TagFactory(name="Ferries", slug="ferries")],
    )
    client.get(story.get_absolute_url())
    return story


def test_a_kept_article_shows_a_change_to_the_story_at_once(client, article_kept):
    article_kept.title = "Ferry timetable triples"
    article_kept.save()

    assert "Ferry timetable triples" in visible_text(client.get(article_kept.get_absolute_url()).content.decode())


def test_a_kept_article_shows_new_labels_and_renamed_sections_at_once(client, article_kept):
    article_kept.tags.add(TagFactory(name="Harbours", slug="harbours"))
    article_kept.section.name = "Getting around"
    article_kept.section.save()

    text = visible_text(client.get(article_kept.get_absolute_url()).content.decode())

    assert "Getting around" in text
    assert "Harbours" in text


def test_a_kept_article_lists_new_coverage_by_other_sources_at_once(client, article_kept):
    StoryFactory(title="More ferries from May", duplicate_of=article_kept, source=SourceFactory(name="Coast Post"))

    assert "Also covered by Coast Post: More ferries from May" in visible_text(
        client.get(article_kept.get_absolute_url()).content.decode()
    )


def test_a_hidden_story_is_not_found_though_its_article_was_kept(client, article_kept):
    article_kept.status = Story.Status.HIDDEN
    article_kept.save()

    assert client.get(article_kept.get_absolute_url()).status_code == 404


def test_a_new_comment_leaves_the_article_kept_and_shows_at_once(
    client, article_kept, django_assert_num_queries, django_capture_on_commit_callbacks
):
    from comments import services
    from comments.models import ModerationRule
    from tests.factories import UserFactory

    ModerationRule.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        services.comment_create(story=article_kept, author=UserFactory(), body="The evening boat is always full.")

    # the story's comment count and the comments: not the story and its tags again
    with django_assert_num_queries(2):
        text = visible_text(client.get(article_kept.get_absolute_url()).content.decode())

    assert "Comments (1)" in text
    assert "The evening boat is always full." in text


def test_a_kept_article_carries_each_pages_list_filters_back(client, article_kept):
    html = client.get(article_kept.get_absolute_url() + "?section=transport&tag=ferries").content.decode()

    assert 'href="/?section=transport&amp;tag=ferries">← Back to stories' in html
    plain = client.get(article_kept.get_absolute_url()).content.decode()
    assert 'href="/">← Back to stories' in plain


def test_a_kept_article_counts_the_views_of_each_reader(client, article_kept, redis_client):
    from django.test import Client

    from stories import viewcounts

    Client(REMOTE_ADDR="203.0.113.9").get(article_kept.get_absolute_url())
    viewcounts.flush_pending_views()

    article_kept.refresh_from_db()
    assert article_kept.view_count == 2


@pytest.mark.parametrize("page_cache_seconds", [0, 60])
def test_a_story_given_a_new_address_is_gone_from_the_old_one_at_once(client, settings, page_cache_seconds):
    settings.VISITOR_PAGE_CACHE_SECONDS = page_cache_seconds
    story = StoryFactory(title="Ferry timetable doubles")
    old_address = story.get_absolute_url()
    client.get(old_address)
    client.get(old_address)

    story = Story.objects.get(pk=story.pk)
    story.slug = "ferry-timetable-doubles-again"
    story.save()

    assert client.get(old_address).status_code == 404
    assert client.get(story.get_absolute_url()).status_code == 200
