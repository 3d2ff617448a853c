"""The moderation queue on a laptop screen, in a real Chromium: every column shows without scrolling sideways."""

import pytest
from django.contrib.auth.models import Group

from comments.models import Comment, ModerationRule
from tests.comments.utils import grant_moderator_permissions
from tests.conftest import PASSWORD
from tests.e2e import conftest as e2e
from tests.factories import CommentFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

browser_page = e2e.browser_page


@pytest.fixture
def busy_queue(transactional_db):
    """A queue as a busy morning leaves it: long titles, long reasons, reported comments."""
    ModerationRule.objects.all().delete()
    moderator = UserFactory(username="moderator", is_staff=True)
    group, _ = Group.objects.get_or_create(name="Moderators")
    grant_moderator_permissions(group)
    moderator.groups.add(group)
    story = StoryFactory(title="Regional council approves the harbour redevelopment plan after a decade of debate")
    for number in range(10):
        text = f"Comment {number}: " + "the ferry timetable and the new shore power plan " * 4
        CommentFactory(
            story=story,
            author=UserFactory(username=f"a_rather_long_username_{number}"),
            body_source=text,
            body_html=f"<p>{text}</p>",
            status=Comment.Status.PENDING,
            reason_code="suspect_words",
            moderation_note="contains the suspect “casino”; 4 links, more than 2; "
            "one of the commenter's first 3 comments",
            open_report_count=number,
        )
    return moderator


def test_the_queue_fits_a_1280_pixel_screen(busy_queue, browser_page):
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(busy_queue.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.goto("/admin/comments/comment/")

    results = page.locator("#changelist .results")
    assert results.evaluate("element => element.scrollWidth <= element.clientWidth")
    for column in ["reason", "reports", "posted"]:
        assert page.locator(f"td.field-{column}").first.is_visible()
        box = page.locator(f"td.field-{column}").first.bounding_box()
        assert box["x"] + box["width"] <= 1280
