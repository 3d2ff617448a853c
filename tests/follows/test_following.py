"""Following sections, tags, regions and sources, and the "Following" page."""

from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from follows import services
from follows.models import Follow
from tests.factories import StoryFactory, UserFactory


def follow(client, kind: str, slug: str, next_url: str = "/"):
    return client.post("/following/follow/", {"kind": kind, "slug": slug, "label": slug, "next": next_url})


def test_reader_follows_a_section_from_a_form_and_goes_back_where_they_were(client, reader, newsroom):
    story = StoryFactory(section=newsroom.sport)
    client.force_login(reader)

    response = follow(client, "section", "sport", f"{story.get_absolute_url()}#follow")

    assert response.status_code == 302
    assert response["Location"] == f"{story.get_absolute_url()}#follow"
    assert list(Follow.objects.of(reader).values_list("section__slug", flat=True)) == ["sport"]


def test_following_twice_keeps_one_follow(client, reader, newsroom):
    client.force_login(reader)

    follow(client, "tag", "ferries")
    follow(client, "tag", "ferries")

    assert Follow.objects.of(reader).count() == 1


def test_each_reader_follows_a_thing_once_in_the_database(reader, newsroom):
    Follow.objects.create(reader=reader, source=newsroom.harbour_news)

    with pytest.raises(IntegrityError):
        Follow.objects.create(reader=reader, source=newsroom.harbour_news)


def test_a_follow_is_of_exactly_one_thing(reader, newsroom):
    with pytest.raises(IntegrityError):
        Follow.objects.create(reader=reader, section=newsroom.sport, tag=newsroom.tides)


def test_two_readers_following_the_same_region_are_two_follows(newsroom):
    first, second = UserFactory(), UserFactory()

    services.follow(reader=first, kind="region", slug="europe")
    services.follow(reader=second, kind="region", slug="europe")
    services.follow(reader=second, kind="region", slug="europe")

    assert Follow.objects.filter(region=newsroom.europe).count() == 2


def test_unfollowing_removes_the_follow_and_is_harmless_twice(client, reader, newsroom):
    services.follow(reader=reader, kind="source", slug="harbour-news")
    client.force_login(reader)

    for _ in range(2):
        response = client.post("/following/unfollow/", {"kind": "source", "slug": "harbour-news", "next": "/"})
        assert response.status_code == 302

    assert not Follow.objects.of(reader).exists()


def test_following_something_that_does_not_exist_is_refused(client, reader, newsroom):
    client.force_login(reader)

    response = follow(client, "section", "no-such-section")

    assert response.status_code == 404
    assert "nothing by that name" in response.content.decode()


def test_the_form_never_sends_a_reader_to_another_site(client, reader, newsroom):
    client.force_login(reader)

    response = follow(client, "section", "sport", "https://elsewhere.example.net/")

    assert response["Location"] == "/following/"


def test_visitors_are_sent_to_log_in(client, newsroom):
    response = follow(client, "section", "sport")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not Follow.objects.exists()


def test_following_needs_the_csrf_token(reader, newsroom):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(reader)

    assert follow(client, "section", "sport").status_code == 403
    assert not Follow.objects.exists()


def test_follows_are_rate_limited_per_reader(client, reader, newsroom, settings):
    settings.FOLLOWS_CHANGES_PER_HOUR = 3
    client.force_login(reader)
    for slug in ("sport", "science", "sport"):
        assert client.post("/following/unfollow/", {"kind": "section", "slug": slug}).status_code == 302

    refused = follow(client, "section", "sport")

    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert not Follow.objects.exists()
    other = UserFactory()
    client.force_login(other)
    assert follow(client, "section", "sport").status_code == 302


# --- The story page and the list's filter bar --------------------------------------------------


def test_story_page_offers_to_follow_its_section_region_source_and_tags(client, reader, newsroom):
    story = StoryFactory(
        section=newsroom.sport, region=newsroom.norway, source=newsroom.harbour_news, tags=[newsroom.ferries]
    )
    services.follow(reader=reader, kind="tag", slug="ferries")
    client.force_login(reader)

    html = client.get(story.get_absolute_url()).content.decode()

    for label in ("Sport", "Europe / Norway", "Harbour News"):
        assert f"Follow {label}</button>" in html
    assert "Unfollow Ferries</button>" in html
    assert "Save for later" in html


def test_visitors_get_a_log_in_link_and_the_cached_page_holds_no_reader_state(client, reader, newsroom, settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    story = StoryFactory(section=newsroom.sport)
    services.follow(reader=reader, kind="section", slug="sport")

    first = client.get(story.get_absolute_url())
    cached = client.get(story.get_absolute_url())

    assert cached["X-Page-Cache"] == "hit"
    for response in (first, cached):
        html = response.content.decode()
        assert "Log in to follow" in html
        assert "Follow Sport" not in html
        assert "Unfollow" not in html


def test_follow_buttons_add_two_queries_to_the_story_page_whatever_its_tags(client, reader, newsroom, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import TagFactory

    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    client.force_login(reader)
    for tag_count in (1, 8):
        story = StoryFactory(section=newsroom.sport, tags=TagFactory.create_batch(tag_count))
        services.follow(reader=reader, kind="tag", slug=story.tags.first().slug)
        client.get(story.get_absolute_url())
        with CaptureQueriesContext(connection) as captured:
            client.get(story.get_absolute_url())
        ours = [q["sql"] for q in captured.captured_queries if '"follows_' in q["sql"]]
        assert len(ours) == 2, ours


def test_filtered_list_offers_to_follow_the_filter(client, reader, newsroom):
    StoryFactory(section=newsroom.sport)
    client.force_login(reader)

    html = client.get("/", {"section": "sport"}).content.decode()
    assert "Follow Sport</button>" in html

    follow(client, "section", "sport", "/?section=sport")
    html = client.get("/", {"section": "sport"}).content.decode()
    assert "Unfollow Sport</button>" in html


def test_unfiltered_list_and_visitors_list_offer_no_follow_button(client, reader, newsroom):
    StoryFactory(section=newsroom.sport)

    visitor_html = client.get("/", {"section": "sport"}).content.decode()
    client.force_login(reader)
    unfiltered_html = client.get("/").content.decode()

    assert "Follow Sport</button>" not in visitor_html
    assert "Log in to follow" in visitor_html
    assert "Follow" not in unfiltered_html.replace("Following", "")


# --- The Following page ----------------------------------------------------------------------


def ago(minutes: int):
    return timezone.now() - timedelta(minutes=minutes)


def test_following_page_lists_stories_from_everything_followed_newest_first(client, reader, newsroom):
    by_section = StoryFactory(title="Cup final goes to extra time", section=newsroom.sport, published_at=ago(50))
    by_country = StoryFactory(
        title="Oslo opens a new pier", section=newsroom.science, region=newsroom.norway, published_at=ago(40)
    )
    by_tag = StoryFactory(
        title="Ferry timetables change", section=newsroom.science, tags=[newsroom.ferries], published_at=ago(30)
    )
    by_source = StoryFactory(
        title="Valley council meets", section=newsroom.science, source=newsroom.valley_times, published_at=ago(20)
    )
    StoryFactory(title="Nothing to do with it", section=newsroom.science, published_at=ago(10))
    StoryFactory(title="Not yet published", section=newsroom.sport, published_at=timezone.now() + timedelta(hours=1))
    for kind, slug in [("section", "sport"), ("region", "europe"), ("tag", "ferries"), ("source", "valley-times")]:
        services.follow(reader=reader, kind=kind, slug=slug)
    client.force_login(reader)

    response = client.get("/following/")

    assert [story.pk for story in response.context["stories"]] == [
        by_source.pk,
        by_tag.pk,
        by_country.pk,
        by_section.pk,
    ]
    html = response.content.decode()
    assert "Nothing to do with it" not in html
    for name in ("Sport", "Europe", "Ferries", "Valley Times"):
        assert f'aria-label="Unfollow {name}"' in html


def test_following_page_pages_with_a_cursor_and_no_story_twice(client, reader, newsroom, settings):
    settings.STORIES_PER_PAGE = 2
    same_time = ago(5)
    stories = [StoryFactory(section=newsroom.sport, published_at=same_time) for _ in range(3)]
    stories.append(StoryFactory(section=newsroom.sport, published_at=ago(60)))
    services.follow(reader=reader, kind="section", slug="sport")
    client.force_login(reader)

    seen, url = [], "/following/"
    while url:
        response = client.get(url)
        seen += [story.pk for story in response.context["stories"]]
        cursor = response.context["page"].next_cursor
        url = f"/following/?after={cursor}" if cursor else ""

    assert seen == [s.pk for s in sorted(stories[:3], key=lambda s: -s.pk)] + [stories[3].pk]


def test_a_damaged_cursor_shows_the_first_page(client, reader, newsroom):
    story = StoryFactory(section=newsroom.sport)
    services.follow(reader=reader, kind="section", slug="sport")
    client.force_login(reader)

    for damaged in ("99999999999999999999-1x", "999999999999999999-999999999999999999", "1-"):
        response = client.get("/following/", {"after": damaged})
        assert [s.pk for s in response.context["stories"]] == [story.pk]


@pytest.mark.parametrize("story_count", [1, 25])
def test_following_page_query_count_is_flat(client, reader, newsroom, django_assert_num_queries, story_count):
    from tests.factories import TagFactory

    for _ in range(story_count):
        StoryFactory(section=newsroom.sport, region=newsroom.norway, tags=TagFactory.create_batch(2))
    for kind, slug in [("section", "sport"), ("region", "europe"), ("tag", "ferries"), ("source", "valley-times")]:
        services.follow(reader=reader, kind=kind, slug=slug)
    client.force_login(reader)

    # the reader, their follows, one page of stories, the stories' tags, and the header's count of new
    # replies to the reader's comments (the session comes from the cache)
    with django_assert_num_queries(5):
        response = client.get("/following/")
    assert len(response.context["stories"]) == min(story_count, 20)


def test_reader_who_follows_nothing_is_told_how_to_start(client, reader, newsroom):
    StoryFactory(section=newsroom.sport)
    client.force_login(reader)

    html = client.get("/following/").content.decode()

    assert "You follow nothing yet." in html


def test_header_links_to_following_for_signed_in_readers_only(client, reader, newsroom, settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    assert 'href="/following/"' not in client.get("/").content.decode()
    client.force_login(reader)
    assert 'href="/following/"' in client.get("/").content.decode()


def test_moderators_find_follows_saves_and_digests_in_the_admin(admin_client, reader, newsroom):
    story = StoryFactory(section=newsroom.sport)
    services.follow(reader=reader, kind="section", slug="sport")
    services.save_story(reader=reader, story=story)
    services.digest_settings_update(reader=reader, frequency="daily", hour=7, time_zone="UTC")

    for model in ("follow", "savedstory", "digestsettings", "digestedstory"):
        response = admin_client.get(f"/admin/follows/{model}/")
        assert response.status_code == 200, model
    assert reader.username in admin_client.get("/admin/follows/follow/").content.decode()
