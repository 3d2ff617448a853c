"""A reader reports a story's wrong section with a suggestion; a moderator confirms it in the admin, and it
becomes a correction the labeller learns from."""

import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connections
from playwright.sync_api import expect

from stories.models import LabelCorrection, LabelReport
from tests.conftest import PASSWORD
from tests.factories import SectionFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MODERATING = ["view_story", "change_story", "view_labelcorrection", "view_labelreport", "change_labelreport"]


@pytest.fixture
def journey(transactional_db):
    technology = SectionFactory(name="Technology", slug="technology")
    business = SectionFactory(name="Business", slug="business")
    story = StoryFactory(title="Chipmaker's shares jump on record orders", section=technology, ai_labelled=True)
    # The Moderators group as the migrations set it up (a transactional test before this one may have
    # emptied the tables they filled).
    group, _ = Group.objects.get_or_create(name="Moderators")
    group.permissions.add(*Permission.objects.filter(content_type__app_label="stories", codename__in=MODERATING))
    moderator = UserFactory(is_staff=True)
    moderator.groups.add(group)
    return {"story": story, "business": business, "reader": UserFactory(), "moderator": moderator}


def from_database(read):
    """Read the database in the test body while the browser runs: Playwright's event loop gives this thread a
    connection of its own, closed here so the test database can be dropped afterwards."""
    try:
        return read()
    finally:
        connections.close_all()


def test_reader_reports_a_wrong_section_and_a_moderator_confirms_it(journey, browser_page):
    story, reader, moderator = journey["story"], journey["reader"], journey["moderator"]
    page = browser_page

    page.goto(f"/accounts/login/?next={story.get_absolute_url()}")
    page.get_by_label("Email").fill(reader.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(story.title)

    page.get_by_text("Is a label wrong?").click()
    expect(page.get_by_label("Wrong section (Technology)")).to_be_checked()
    page.get_by_label("A better section (optional)").select_option(label="Business")
    page.get_by_label("A better tag, or a note for moderators (optional)").fill("It is about the share price")
    page.get_by_role("button", name="Send report").click()

    expect(page.get_by_text("Thank you for the report. A moderator will look at this story's labels.")).to_be_visible()
    page.get_by_text("Is a label wrong?").click()
    expect(page.get_by_text("You have reported this story's labels.")).to_be_visible()
    report = from_database(lambda: LabelReport.objects.select_related("reporter", "suggested_section").get())
    assert (report.reporter, report.suggested_section, report.status) == (reader, journey["business"], "open")

    page.get_by_role("button", name="Log out").click()
    # The admin signs in through the site's own login page.
    page.goto("/admin/stories/labelreport/")
    page.get_by_label("Email").fill(moderator.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    row = page.get_by_role("row").filter(has_text=story.title)
    expect(row).to_contain_text("Technology → Business")
    row.get_by_role("checkbox").check()
    page.get_by_label("Action:").select_option(label="Confirm selected reports (correct the labels)")
    page.get_by_role("button", name="Go").click()

    expect(page.get_by_text("1 reports confirmed; 1 corrections recorded")).to_be_visible()
    page.goto("/admin/stories/labelcorrection/")
    expect(page.get_by_role("row").filter(has_text=story.title)).to_contain_text(re.compile(r"Section.*business"))
    correction = from_database(lambda: LabelCorrection.objects.select_related("corrected_by").get())
    assert (correction.field, correction.value, correction.corrected_by) == ("section", "business", moderator)
    report = from_database(lambda: LabelReport.objects.get())
    assert (report.status, report.correction_id) == ("confirmed", correction.pk)

    page.goto(story.get_absolute_url())
    expect(page.locator(".kicker")).to_contain_text("Business")
