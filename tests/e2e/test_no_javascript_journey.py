"""The story page's comments with JavaScript turned off: a visitor reads them and is asked to log in; a
reader posts a comment through the plain form and finds it on the page."""

import re

import pytest
from playwright.sync_api import expect

from comments.models import ModerationRule
from tests.conftest import PASSWORD
from tests.factories import CommentFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def story(transactional_db):
    """A story with a comment and a reply to it, on a site with no moderation rules."""
    ModerationRule.objects.all().delete()
    story = StoryFactory(title="Night ferries return to the fjord")
    first = CommentFactory(
        story=story, author=UserFactory(username="bea"), body_source="Finally!", body_html="<p>Finally!</p>"
    )
    CommentFactory(parent=first, author=UserFactory(username="dev"), body_source="Agreed.", body_html="<p>Agreed.</p>")
    return story


def test_visitor_without_javascript_reads_the_comments(story, browser_page_without_javascript):
    page = browser_page_without_javascript

    page.goto(story.get_absolute_url())

    comments = page.locator("#comments")
    expect(comments.get_by_role("heading", name="Comments (2)")).to_be_visible()
    expect(comments.locator(".comment-card").filter(has_text="Finally!")).to_contain_text("bea")
    expect(comments.locator(".comment-card").filter(has_text="Agreed.")).to_contain_text("dev")
    expect(comments.get_by_role("link", name="Log in to comment.")).to_be_visible()
    expect(comments.get_by_text("Loading...")).to_be_hidden()
    expect(comments.locator("textarea")).to_have_count(0)


def test_reader_without_javascript_posts_a_comment_from_the_story_page(story, browser_page_without_javascript):
    reader = UserFactory(username="cleo")
    page = browser_page_without_javascript

    page.goto(story.get_absolute_url())
    page.locator("#comments").get_by_role("link", name="Log in to comment.").click()
    page.get_by_label("Email").fill(reader.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(re.compile(re.escape(f"{story.get_absolute_url()}#comments") + "$"))
    page.get_by_label("Your comment").fill("Do the night ferries take *bikes*?")
    page.get_by_role("button", name="Post comment").click()

    mine = page.locator(".comment-card").filter(has_text="Do the night ferries take bikes?")
    expect(mine).to_contain_text("cleo")
    expect(mine.locator("em")).to_have_text("bikes")
    page.goto(story.get_absolute_url())
    expect(page.get_by_role("heading", name="Comments (3)")).to_be_visible()
    expect(page.locator("#comments .comment-card").filter(has_text="Do the night ferries take bikes?")).to_be_visible()
