"""In a real Chromium: a reader who posts too quickly sees one notice at a time, the refusal replacing
"Your comment is published." and naming the limit that binds with the true wait."""

import re

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from comments.models import ModerationRule
from tests.e2e.conftest import browser_page  # noqa: F401  (the fixture, shared with the journeys)
from tests.factories import ModerationRuleFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scene(transactional_db):
    ModerationRule.objects.all().delete()
    ModerationRuleFactory(kind="rate_limit", limit=1, window_seconds=15)
    ModerationRuleFactory(kind="rate_limit", limit=1, window_seconds=60)
    story = StoryFactory(title="Tram line to the harbour opens in spring")
    reader = UserFactory(username="dora")
    return story, reader


def test_a_refusal_replaces_the_published_notice(scene, live_server, browser_page):  # noqa: F811
    story, reader = scene
    page = browser_page
    signed_in = Client()
    signed_in.force_login(reader)
    session = signed_in.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
    page.goto(story.get_absolute_url())

    page.get_by_label("Your comment").fill("Will it run on Sundays?")
    page.get_by_role("button", name="Post comment").click()
    published = page.get_by_text("Your comment is published.")
    expect(published).to_be_visible()

    page.get_by_label("Your comment").fill("And at night?")
    page.get_by_role("button", name="Post comment").click()

    refusal = page.get_by_role("alert")
    expect(refusal).to_have_text(
        re.compile(r"at most 1 comment every 1 minute\. Please try again in (59|60) seconds\.$")
    )
    expect(published).to_have_count(0)
    expect(page.get_by_text("You are commenting too quickly")).to_have_count(1)
    expect(page.get_by_label("Your comment")).to_have_value("And at night?")
