"""A new reader signs up, verifies their email, comments, replies, edits, deletes and reports; a
moderator approves their held comment in the admin, and the reader sees it published."""

import re

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from playwright.sync_api import expect

from comments.models import ModerationRule
from tests.comments.utils import grant_moderator_permissions
from tests.conftest import PASSWORD
from tests.factories import CommentFactory, ModerationRuleFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scene(transactional_db):
    """A story with one comment by another reader, a moderator, and the rule that holds a new commenter's
    first comment."""
    ModerationRule.objects.all().delete()
    ModerationRuleFactory(kind="new_account", limit=1)
    story = StoryFactory(title="Night ferries return to the fjord")
    CommentFactory(story=story, author=UserFactory(username="bea"), body_source="Finally!", body_html="<p>Finally!</p>")
    moderator = UserFactory(username="moderator", is_staff=True)
    group, _ = Group.objects.get_or_create(name="Moderators")
    grant_moderator_permissions(group)
    moderator.groups.add(group)
    return story, moderator


def log_in(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def log_out(page) -> None:
    page.goto("/")
    page.get_by_role("button", name="Log out").click()


def comment_card(page, text: str):
    return page.locator(".comment-card").filter(has_text=text)


def test_reader_journey_from_sign_up_to_a_moderator_approved_comment(scene, browser_page):
    story, moderator = scene
    page = browser_page

    # Sign up, then verify the email address with the link from the mail.
    page.goto("/accounts/signup/")
    page.get_by_label("Email").fill("cleo@example.com")
    page.get_by_label("Public name").fill("cleo")
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/accounts/confirm-email/$"))
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+)", mail.outbox[-1].body).group(1)
    page.goto(link)
    page.get_by_role("button", name="Confirm").click()

    # Comment: a new commenter's first comment waits for a moderator, and the author sees it waiting.
    page.goto(story.get_absolute_url())
    expect(page.get_by_role("heading", name="Comments (1)")).to_be_visible()
    page.get_by_label("Your comment").fill("Does the *night* ferry take bikes?")
    page.get_by_role("button", name="Post comment").click()
    mine = comment_card(page, "Does the night ferry take bikes?")
    expect(mine).to_contain_text("awaiting moderation")
    expect(mine.locator("em")).to_have_text("night")
    expect(page.get_by_role("status").filter(has_text="once a moderator has approved it")).to_be_visible()

    # Reply to another reader.
    comment_card(page, "Finally!").get_by_role("link", name="Reply").click()
    page.get_by_label("Your reply to bea").fill("Agreed, at last.")
    page.get_by_role("button", name="Post reply").click()
    expect(comment_card(page, "Agreed, at last.")).to_be_visible()

    # Edit the first comment within the window.
    mine.get_by_role("link", name="Edit").click()
    page.get_by_label("Edit your comment").fill("Does the night ferry take bicycles?")
    page.get_by_role("button", name="Save changes").click()
    mine = comment_card(page, "Does the night ferry take bicycles?")
    expect(mine).to_contain_text("edited")

    # Delete the reply: a tombstone takes its place.
    comment_card(page, "Agreed, at last.").get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete comment").click()
    expect(page.get_by_text("Agreed, at last.")).to_have_count(0)
    expect(page.locator(".comment-tombstone-text").filter(has_text="[deleted]")).to_be_visible()

    # Report the other reader's comment.
    comment_card(page, "Finally!").get_by_role("link", name="Report").click()
    page.get_by_label("Spam").check()
    page.get_by_role("button", name="Report comment").click()
    expect(page.get_by_text("Thank you for the report")).to_be_visible()

    # Others do not see the held comment.
    log_out(page)
    page.goto(story.get_absolute_url())
    expect(page.get_by_text("Finally!")).to_be_visible()
    expect(page.get_by_text("bicycles")).to_have_count(0)

    # A moderator approves it from the queue.
    log_in(page, moderator.email)
    page.goto("/admin/comments/comment/")
    row = page.locator("#result_list tr").filter(has_text="Does the night ferry take bicycles?")
    expect(row).to_contain_text("New commenter")
    row.locator("input.action-select").check()
    page.locator("select[name=action]").select_option("approve")
    page.get_by_role("button", name="Go").click()
    page.get_by_role("button", name=re.compile("Yes, approve selected comments")).click()
    expect(page.get_by_text("1 comment approved.")).to_be_visible()

    # The reader sees it published, and counted.
    log_out(page)
    log_in(page, "cleo@example.com")
    page.goto(story.get_absolute_url())
    expect(page.get_by_role("heading", name="Comments (2)")).to_be_visible()
    mine = comment_card(page, "Does the night ferry take bicycles?")
    expect(mine).to_be_visible()
    expect(mine).not_to_contain_text("awaiting moderation")
