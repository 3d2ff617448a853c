"""The story list: newest first, cards, filters, search, pagination, empty states, fixed queries."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from stories.models import Story
from tests.conftest import require
from tests.factories import RegionFactory, SectionFactory, SourceFactory, StoryFactory, TagFactory

pytestmark = pytest.mark.django_db


def titles(response) -> list[str]:
    return [story.title for story in response.context["stories"]]


def test_list_shows_published_stories_newest_first(client):
    now = timezone.now()
    older = StoryFactory(title="Older story", published_at=now - timedelta(days=1))
    newer = StoryFactory(title="Newer story", published_at=now)
    StoryFactory(title="Draft story", status=Story.Status.DRAFT)
    StoryFactory(title="Hidden story", status=Story.Status.HIDDEN)
    StoryFactory(title="Scheduled story", published_at=now + timedelta(hours=2))

    response = client.get("/")

    assert response.status_code == 200
    assert titles(response) == [newer.title, older.title]
    assert b"Hidden story" not in response.content


def test_card_shows_image_section_dek_source_date_reading_time_comments_and_ai_badge(client):
    story = StoryFactory(
        title="Harbour cranes go electric",
        dek="Cranes at the port now run on grid power.",
        section=SectionFactory(name="Technology", slug="technology"),
        source=SourceFactory(name="Harbour Ledger"),
        image_url="/media/cranes.jpg",
        ai_labelled=True,
        comment_count=3,
    )

    html = client.get("/").content.decode()

    for expected in (
        story.title,
        story.dek,
        "Technology",
        "Harbour Ledger",
        story.published_at.strftime("%Y-%m-%d"),
        "1 min",
        "3 comments",
        "AI-labelled",
        'src="/media/cranes.jpg"',
    ):
        assert expected in html


def test_card_without_image_shows_placeholder_not_a_broken_image(client):
    StoryFactory(image_url="", section=SectionFactory(name="Sport", slug="sport"))

    html = client.get("/").content.decode()

    assert 'class="placeholder"' in html
    assert "<img" not in html


@pytest.mark.parametrize("kind", ["section", "tag", "region", "source"])
def test_each_filter_narrows_the_list(client, kind):
    wanted_section = SectionFactory(slug="sport")
    wanted_tag = TagFactory(slug="rugby")
    wanted_region = RegionFactory(slug="oceania")
    wanted_source = SourceFactory(slug="tribune")
    match = StoryFactory(section=wanted_section, region=wanted_region, source=wanted_source, tags=[wanted_tag])
    StoryFactory()
    slug = {"section": "sport", "tag": "rugby", "region": "oceania", "source": "tribune"}[kind]

    response = client.get("/", {kind: slug})

    assert titles(response) == [match.title]


def test_region_filter_on_a_continent_includes_its_countries(client):
    asia = RegionFactory(name="Asia", slug="asia")
    china = RegionFactory(name="China", slug="china", parent=asia)
    in_china = StoryFactory(region=china)
    StoryFactory(region=RegionFactory(name="Europe", slug="europe"))

    assert titles(client.get("/", {"region": "asia"})) == [in_china.title]


def test_filters_combine_and_show_as_removable_chips(client):
    sport = SectionFactory(name="Sport", slug="sport")
    rugby = TagFactory(name="Rugby", slug="rugby")
    match = StoryFactory(section=sport, tags=[rugby])
    StoryFactory(section=sport)

    response = client.get("/", {"section": "sport", "tag": "rugby"})
    html = response.content.decode()

    assert titles(response) == [match.title]
    assert "Section: Sport" in html
    assert "Tag: Rugby" in html
    assert 'href="?tag=rugby"' in html  # removing the section keeps the tag
    assert 'href="?section=sport"' in html


def test_search_finds_words_in_title_and_body(client):
    StoryFactory(title="Ferries charge overnight", body_html="<p>Batteries on the fjord.</p>")
    StoryFactory(title="Tea growers trial sensors", body_html="<p>Soil moisture probes on farms.</p>")

    assert titles(client.get("/", {"q": "ferries"})) == ["Ferries charge overnight"]
    assert titles(client.get("/", {"q": "moisture"})) == ["Tea growers trial sensors"]


def test_search_with_no_match_says_what_to_do(client):
    StoryFactory(title="Ferries charge overnight")

    html = client.get("/", {"q": "volcano"}).content.decode()

    assert "No stories match." in html
    assert "see all stories" in html


def test_empty_site_explains_how_to_get_stories(client):
    html = client.get("/").content.decode()

    assert "No stories yet." in html
    assert "load_demo" in html


def older_link(response) -> str:
    return re.search(r'<a rel="next" href="([^"]*)">Older →</a>', response.content.decode())[1].replace("&amp;", "&")


def newer_link(response) -> str:
    return re.search(r'<a rel="prev" href="([^"]*)">← Newer</a>', response.content.decode())[1].replace("&amp;", "&")


def test_older_and_newer_links_walk_the_whole_list_keeping_filters(client, settings):
    settings.STORIES_PER_PAGE = 2
    sport = SectionFactory(slug="sport")
    now = timezone.now()
    # Two stories published at the same moment: the cursor tells them apart by id.
    stories = [StoryFactory(section=sport, published_at=now - timedelta(hours=hours)) for hours in (1, 2, 2, 3, 4)]
    StoryFactory(section=SectionFactory(slug="arts"))
    newest_first = sorted(stories, key=lambda story: (story.published_at, story.pk), reverse=True)

    first = client.get("/", {"section": "sport"})
    second = client.get(older_link(first))
    third = client.get(older_link(second))

    assert [titles(page) for page in (first, second, third)] == [
        [story.title for story in newest_first[0:2]],
        [story.title for story in newest_first[2:4]],
        [story.title for story in newest_first[4:]],
    ]
    assert older_link(first).startswith("/?section=sport&after=")
    assert "Older →" not in third.content.decode()
    assert "← Newer" not in first.content.decode()
    assert titles(client.get(newer_link(third))) == titles(second)
    assert titles(client.get(newer_link(second))) == titles(first)


def test_an_old_numbered_page_link_redirects_to_the_same_stories(client, settings):
    settings.STORIES_PER_PAGE = 2
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    sport = SectionFactory(slug="sport")
    now = timezone.now()
    for hours in range(5):
        StoryFactory(section=sport, published_at=now - timedelta(hours=hours))

    third = client.get("/", {"section": "sport", "page": 3}, follow=True)
    beyond = client.get("/", {"section": "sport", "page": 9})

    assert third.redirect_chain[0][1] == 302
    assert titles(third) == titles(client.get(older_link(client.get(older_link(client.get("/?section=sport"))))))
    assert beyond["Location"] == "/?section=sport"


def test_search_results_are_paged_by_number(client, settings):
    settings.STORIES_PER_PAGE = 2
    for number in range(3):
        StoryFactory(title=f"Ferry timetable number {number}")

    first = client.get("/", {"q": "ferry"})
    second = client.get(older_link(first))

    assert older_link(first) == "/?q=ferry&page=2"
    assert len(titles(first)) == 2 and len(titles(second)) == 1
    assert set(titles(first)).isdisjoint(titles(second))
    assert newer_link(second) == "/?q=ferry"


def test_story_links_carry_the_filters_back_to_the_list(client):
    story = StoryFactory(section=SectionFactory(slug="sport"))

    html = client.get("/", {"section": "sport"}).content.decode()

    assert f'href="{story.get_absolute_url()}?section=sport"' in html


@pytest.mark.parametrize("count", [1, 30])
def test_list_query_count_does_not_grow_with_stories(client, django_assert_num_queries, settings, count):
    settings.STORIES_PER_PAGE = 25
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    tags = TagFactory.create_batch(3)
    for _ in range(count):
        StoryFactory(tags=tags, region=RegionFactory(parent=RegionFactory()))

    # the cards' rows, the section menu: with no card kept yet, and with every card kept
    for _ in range(2):
        with django_assert_num_queries(2) as queries:
            response = client.get("/")
        assert response.status_code == 200
        assert len(titles(response)) == min(count, 25)
        assert not any("COUNT(" in query["sql"].upper() for query in queries.captured_queries)


def test_filtered_list_query_count_is_fixed(client, django_assert_num_queries):
    sport = SectionFactory(slug="sport")
    StoryFactory.create_batch(5, section=sport)

    # the cards' rows, the section menu, the section's name for its chip
    with django_assert_num_queries(3):
        client.get("/", {"section": "sport"})


def test_a_filter_naming_nothing_shows_no_stories_without_querying_for_them(client, django_assert_num_queries):
    StoryFactory(section=SectionFactory(slug="sport"))

    # the section looked up for its chip, the section menu
    with django_assert_num_queries(2):
        html = client.get("/", {"section": "no-such-section"}).content.decode()

    assert "No stories match." in html
    assert "Section: no-such-section" in html


def test_section_menu_marks_the_section_shown(client):
    SectionFactory(name="Sport", slug="sport")
    SectionFactory(name="Science", slug="science")

    everything = client.get("/").content.decode()
    sport = client.get("/", {"section": "sport"}).content.decode()

    assert '<a href="/" aria-current="page">All stories</a>' in everything
    assert 'href="/?section=sport" aria-current="page">Sport</a>' in sport
    assert 'href="/?section=science">Science</a>' in sport
    assert 'aria-current="page">All stories' not in sport


def test_search_ranks_only_its_newest_matches(client, monkeypatch):
    require(connection.vendor == "postgresql", "ranked search needs PostgreSQL (set DATABASE_URL)")
    monkeypatch.setattr("stories.models.SEARCH_CANDIDATES", 2)
    now = timezone.now()
    StoryFactory(title="Ferry ferry ferry timetable", published_at=now - timedelta(days=3))
    newer = [StoryFactory(title=f"Ferry note {n}", published_at=now - timedelta(hours=n)) for n in (1, 2)]

    assert sorted(titles(client.get("/", {"q": "ferry"}))) == sorted(story.title for story in newer)


def list_plans() -> tuple[int, int]:
    """How often this connection ran the unfiltered list's prepared query from its generic plan, and from
    plans made for the values at hand."""
    from django.db import connection

    with connection.cursor() as cursor:
        kept = "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s"
        cursor.execute(kept, ["%FROM stories_story s%WHERE%ORDER BY s.published_at DESC, s.id DESC LIMIT%"])
        return cursor.fetchone() or (0, 0)


@pytest.mark.django_db(transaction=True)  # as in production: the connection is set up outside a transaction
def test_the_unfiltered_list_runs_from_a_plan_the_connection_keeps(client, settings):
    from django.db import connection

    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    StoryFactory(title="Night ferries resume")
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    generic_before, custom_before = list_plans()

    first, again = client.get("/"), client.get("/")

    assert "Night ferries resume" in titles(first) and titles(first) == titles(again)
    assert list_plans() == (generic_before + 2, custom_before)
