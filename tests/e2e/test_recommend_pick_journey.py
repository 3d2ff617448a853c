"""A reader recommends a comment and takes it back, sorts by "Most recommended"; a moderator makes a comment an
editors' pick from the page and finds it in the picks tab; a visitor sees the counts and badges; and the same
recommendation works with JavaScript turned off."""

import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from comments.models import Comment, ModerationLog, ModerationRule
from tests.comments.utils import grant_moderator_permissions
from tests.conftest import PASSWORD
from tests.factories import CommentFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scene(transactional_db):
    """A story with two readers' comments and one by a moderator, on a site with no moderation rules."""
    ModerationRule.objects.all().delete()
    story = StoryFactory(title="Cable car to the old fort reopens")
    CommentFactory(
        story=story,
        author=UserFactory(username="bea"),
        body_source="Queues were short.",
        body_html="<p>Queues were short.</p>",
    )
    CommentFactory(
        story=story,
        author=UserFactory(username="dev"),
        body_source="Tickets cost twice as much now.",
        body_html="<p>Tickets cost twice as much now.</p>",
    )
    moderator = UserFactory(username="warden", is_staff=True)
    group, _ = Group.objects.get_or_create(name="Moderators")
    grant_moderator_permissions(group)
    moderator.groups.add(group)
    CommentFactory(
        story=story,
        author=moderator,
        body_source="Please keep to the topic.",
        body_html="<p>Please keep to the topic.</p>",
    )
    return story, moderator


def log_in(page, email: str, then: str) -> None:
    page.goto(f"/accounts/login/?next={then}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(then) + "$"))


def log_out(page) -> None:
    page.get_by_role("button", name="Log out").click()


def card(page, text: str):
    return page.locator(".comment-card").filter(has_text=text)


def top_level_texts(page) -> list[str]:
    return page.locator("#comment-list > li.comment > .comment-card .comment-body").all_inner_texts()


def test_reader_recommends_and_moderator_picks(scene, browser_page):
    story, moderator = scene
    page = browser_page
    reader = UserFactory(username="cleo")

    # A reader recommends a comment: the card answers in place, the button keeps the focus.
    log_in(page, reader.email, story.get_absolute_url())
    costly = card(page, "Tickets cost twice as much now.")
    costly.get_by_role("button", name="Recommend").click()
    expect(costly.locator(".comment-recommendations")).to_have_text("1 recommendation")
    recommended = costly.get_by_role("button", name="Recommended")
    expect(recommended).to_have_attribute("aria-pressed", "true")
    expect(recommended).to_be_focused()
    expect(page.get_by_role("status").filter(has_text="You recommend this comment.")).to_be_visible()
    # Nobody recommends their own words, and nothing else changed.
    expect(card(page, "Queues were short.").locator(".comment-recommendations")).to_have_count(0)

    # It stays recommended on a fresh page, and "Most recommended" puts it first.
    page.reload()
    expect(card(page, "Tickets cost twice as much now.").get_by_role("button", name="Recommended")).to_be_visible()
    page.locator(".comment-sort").get_by_role("link", name="Most recommended").click()
    expect(page.locator(".comment-sort strong")).to_have_text("Most recommended")
    assert top_level_texts(page)[0] == "Tickets cost twice as much now."

    # Taken back: the count goes, the button is "Recommend" again.
    card(page, "Tickets cost twice as much now.").get_by_role("button", name="Recommended").click()
    expect(card(page, "Tickets cost twice as much now.").get_by_role("button", name="Recommend")).to_have_attribute(
        "aria-pressed", "false"
    )
    expect(card(page, "Tickets cost twice as much now.").locator(".comment-recommendations")).to_have_count(0)
    card(page, "Tickets cost twice as much now.").get_by_role("button", name="Recommend").click()
    expect(card(page, "Tickets cost twice as much now.").locator(".comment-recommendations")).to_have_text(
        "1 recommendation"
    )
    expect(card(page, "Queues were short.").get_by_role("button", name="Make editors' pick")).to_have_count(0)
    log_out(page)

    # A moderator makes a comment an editors' pick from the page; their own comment carries their badge.
    log_in(page, moderator.email, story.get_absolute_url())
    expect(card(page, "Please keep to the topic.").locator(".comment-badge-moderator")).to_have_text("Moderator")
    card(page, "Queues were short.").get_by_role("button", name="Make editors' pick").click()
    expect(card(page, "Queues were short.").locator(".comment-badge-pick")).to_have_text("Editors' pick")
    expect(card(page, "Queues were short.").get_by_role("button", name="Remove from editors' picks")).to_be_focused()
    assert ModerationLog.objects.filter(action="picked", moderator=moderator).count() == 1

    # The picks tab holds the pick alone.
    page.locator(".comment-sort").get_by_role("link", name="Editors' picks").click()
    expect(page.locator(".comment-sort strong")).to_have_text("Editors' picks")
    expect(page.locator("#comment-list .comment-card")).to_have_count(1)
    expect(page.locator("#comment-list .comment-card")).to_contain_text("Queues were short.")
    log_out(page)

    # A visitor sees the count and the badges, and no buttons.
    page.goto(story.get_absolute_url())
    expect(card(page, "Tickets cost twice as much now.").locator(".comment-recommendations")).to_have_text(
        "1 recommendation"
    )
    expect(card(page, "Queues were short.").locator(".comment-badge-pick")).to_be_visible()
    expect(card(page, "Please keep to the topic.").locator(".comment-badge-moderator")).to_be_visible()
    expect(page.locator("#comments").get_by_role("button", name="Recommend")).to_have_count(0)


def test_reader_without_javascript_recommends_and_comes_back_to_the_comment(scene, browser_page_without_javascript):
    story, _ = scene
    page = browser_page_without_javascript
    reader = UserFactory(username="cleo")
    queues = Comment.objects.get(body_source="Queues were short.")

    log_in(page, reader.email, story.get_absolute_url())
    card(page, "Queues were short.").get_by_role("button", name="Recommend").click()

    expect(page).to_have_url(re.compile(re.escape(f"{story.get_absolute_url()}#comment-{queues.pk}") + "$"))
    expect(page.get_by_text("You recommend this comment.")).to_be_visible()
    expect(card(page, "Queues were short.").locator(".comment-recommendations")).to_have_text("1 recommendation")
    expect(card(page, "Queues were short.").get_by_role("button", name="Recommended")).to_be_visible()
