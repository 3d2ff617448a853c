"""A visitor reads a story, signs in from its comment section and lands back on the comments."""

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.factories import StoryFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def story_and_reader(transactional_db):
    return StoryFactory(title="Ferries switch to shore power", ai_generated=True), UserFactory()


def test_visitor_signs_in_from_a_story_and_lands_back_on_its_comments(story_and_reader, browser_page):
    story, reader = story_and_reader
    page = browser_page

    page.goto(story.get_absolute_url())
    expect(page.get_by_role("heading", level=1)).to_have_text(story.title)
    expect(page.get_by_text("This content was automatically generated and/or translated by AI.")).to_be_visible()
    expect(page.get_by_role("heading", name="Comments (0)")).to_be_visible()
    # The thread arrives after the page: the placeholder is replaced by the fragment.
    expect(page.get_by_text("No comments yet.")).to_be_visible()

    page.get_by_role("link", name="Log in to comment.").click()
    page.get_by_label("Email").fill(reader.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(re.compile(re.escape(story.get_absolute_url()) + "#comments$"))
    expect(page.get_by_role("heading", name="Comments (0)")).to_be_visible()
    expect(page.get_by_text("Log in to comment.")).to_have_count(0)
