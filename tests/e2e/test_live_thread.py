"""A reader with a thread open sees "1 new comment — show" when someone else comments, without reloading,
and "show" brings it in; their own comment never counts as news. A story past its closing age reads as
before and says "Comments are closed."."""

from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from playwright.sync_api import expect

from comments import services
from comments.models import ModerationRule
from tests.conftest import PASSWORD
from tests.factories import CommentFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def quick_polls(settings):
    settings.COMMENTS_LIVE_POLL_SECONDS = 1
    settings.VISITOR_PAGE_CACHE_SECONDS = 60


@pytest.fixture
def story(transactional_db):
    """A story with one comment, on a site with no moderation rules."""
    ModerationRule.objects.all().delete()
    story = StoryFactory(title="Night ferries return to the fjord")
    CommentFactory(story=story, author=UserFactory(username="bea"), body_source="Finally!", body_html="<p>Finally!</p>")
    return story


@pytest.fixture
def closed_story(transactional_db):
    """A story published eight days ago, with a comment, on a site whose comments close after a week."""
    ModerationRule.objects.all().delete()
    ModerationRule.objects.create(name="Comments for a week", kind="close_after", limit=7)
    story = StoryFactory(title="The old ferry timetable", published_at=timezone.now() - timedelta(days=8))
    CommentFactory(story=story, author=UserFactory(username="bea"), body_source="Kept for the record.")
    return story


@pytest.fixture
def readers(transactional_db):
    return UserFactory(username="cleo"), UserFactory(username="dev")


def from_database(write):
    """Write to the database in the test body while the browser runs: Playwright's event loop gives this thread
    a connection of its own, closed here so the test database can be dropped afterwards."""
    try:
        return write()
    finally:
        connections.close_all()


def log_in(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_an_open_thread_offers_new_comments_and_shows_them(quick_polls, story, readers, browser_page):
    cleo, dev = readers
    page = browser_page
    polls = []
    page.on("request", lambda request: polls.append(request) if request.url.endswith("/live/") else None)
    log_in(page, cleo.email)
    page.goto(story.get_absolute_url())
    comments = page.locator("#comments")
    expect(comments.get_by_role("heading", name="Comments (1)")).to_be_visible()

    # The reader's own comment is on the page already: it is no news to them.
    page.get_by_label("Your comment").fill("Do the night ferries take bikes?")
    page.get_by_role("button", name="Post comment").click()
    expect(comments.get_by_role("heading", name="Comments (2)")).to_be_visible()
    for _ in range(2):
        with page.expect_response(lambda response: response.url.endswith("/live/")):
            pass
    expect(comments.locator("#comment-live")).to_be_hidden()

    # Someone else comments: the open thread says so within a poll or two, without a reload.
    from_database(lambda: services.comment_create(story=story, author=dev, body="Only on the late sailing."))
    news = comments.locator("#comment-live")
    expect(news).to_be_visible(timeout=10_000)
    expect(news).to_have_text("1 new comment — show")
    expect(comments.locator(".comment-card").filter(has_text="Only on the late sailing.")).to_have_count(0)

    news.get_by_role("link", name="show").click()
    expect(comments.locator(".comment-card").filter(has_text="Only on the late sailing.")).to_be_visible()
    expect(comments.get_by_role("heading", name="Comments (3)")).to_be_visible()
    expect(comments.locator("#comment-live")).to_be_hidden()

    # The polls went without the reader's cookies: the page cache answers them before sessions and views.
    assert polls and all("cookie" not in request.all_headers() for request in polls)


def test_a_thread_past_its_closing_age_is_readable_and_closed(quick_polls, closed_story, readers, browser_page):
    page = browser_page

    page.goto(closed_story.get_absolute_url())
    comments = page.locator("#comments")
    expect(comments.get_by_text("Comments are closed.")).to_be_visible()
    expect(comments.locator(".comment-card").filter(has_text="Kept for the record.")).to_be_visible()
    expect(comments.get_by_role("link", name="Log in to comment.")).to_have_count(0)

    log_in(page, readers[0].email)
    page.goto(closed_story.get_absolute_url())
    expect(comments.get_by_text("Comments are closed.")).to_be_visible()
    expect(comments.locator(".comment-card").filter(has_text="Kept for the record.")).to_be_visible()
    expect(page.get_by_label("Your comment")).to_have_count(0)
    expect(comments.get_by_role("button", name="Post comment")).to_have_count(0)


def test_a_hidden_tab_stops_asking_and_asks_again_once_shown(quick_polls, story, browser_page):
    page = browser_page
    polls = []
    page.on("request", lambda request: polls.append(request.url) if request.url.endswith("/live/") else None)
    page.goto(story.get_absolute_url())
    with page.expect_response(lambda response: response.url.endswith("/live/")):
        pass

    set_visibility(page, "hidden")
    asked = len(polls)
    page.wait_for_timeout(3_000)
    assert len(polls) <= asked + 1, "at most the poll already under way when the tab was hidden"

    with page.expect_response(lambda response: response.url.endswith("/live/"), timeout=2_000):
        set_visibility(page, "visible")


def set_visibility(page, state: str) -> None:
    """What the browser does when the reader switches tabs, told to the page."""
    page.evaluate(
        """state => {
            Object.defineProperty(document, "visibilityState", { value: state, configurable: true });
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        state,
    )
