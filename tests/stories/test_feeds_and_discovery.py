"""Our RSS feeds, the sitemap and robots.txt."""

import defusedxml.ElementTree as ET
import pytest

from tests.factories import SectionFactory, StoryFactory

pytestmark = pytest.mark.django_db


def test_latest_stories_feed_lists_published_stories(client):
    story = StoryFactory(title="Ferries go electric")

    response = client.get("/feed/")
    channel = ET.fromstring(response.content).find("channel")

    assert response["Content-Type"].startswith("application/rss+xml")
    assert [item.findtext("title") for item in channel.findall("item")] == ["Ferries go electric"]
    assert channel.find("item").findtext("link").endswith(story.get_absolute_url())


def test_section_feed_lists_only_that_section(client):
    sport = SectionFactory(name="Sport", slug="sport")
    StoryFactory(title="Cup final", section=sport)
    StoryFactory(title="Chip plant")

    channel = ET.fromstring(client.get("/feed/sport/").content).find("channel")

    assert [item.findtext("title") for item in channel.findall("item")] == ["Cup final"]
    assert client.get("/feed/no-such-section/").status_code == 404


def test_sitemap_lists_story_pages(client):
    story = StoryFactory()

    response = client.get("/sitemap.xml")

    assert response.status_code == 200
    assert story.get_absolute_url().encode() in response.content


def test_robots_txt_points_to_the_sitemap_and_keeps_crawlers_out_of_admin(client):
    text = client.get("/robots.txt").content.decode()

    assert "Disallow: /admin/" in text
    assert "Sitemap: http://testserver/sitemap.xml" in text


def test_pages_send_a_strict_content_security_policy(client):
    response = client.get("/")

    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "unsafe-inline" not in response["Content-Security-Policy"]
