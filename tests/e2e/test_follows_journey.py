"""A reader follows a section from a story page, finds it on "Following", saves a story, asks for a daily
digest, gets it by email and unsubscribes with its one-click link."""

import re
from datetime import timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from follows import digests
from follows.models import DigestSettings
from tests.conftest import PASSWORD
from tests.factories import SectionFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scene(transactional_db):
    rowing = SectionFactory(name="Rowing", slug="rowing")
    opened = StoryFactory(
        title="Lake regatta moves to spring", section=rowing, published_at=timezone.now() - timedelta(hours=2)
    )
    other = StoryFactory(
        title="New boathouse opens on the river", section=rowing, published_at=timezone.now() - timedelta(hours=1)
    )
    StoryFactory(title="Parliament debates the budget", section=SectionFactory(name="Politics", slug="politics"))
    reader = UserFactory(username="dana")
    return opened, other, reader


def test_reader_follows_saves_gets_a_digest_and_unsubscribes(scene, browser_page):
    opened, other, reader = scene
    page = browser_page

    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(reader.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()

    # Follow the story's section from its page, and come back to the same page.
    page.goto(opened.get_absolute_url())
    page.get_by_role("button", name="Follow Rowing", exact=True).click()
    expect(page).to_have_url(re.compile(re.escape(opened.get_absolute_url())))
    expect(page.get_by_role("status").filter(has_text="You follow Rowing now.")).to_be_visible()
    expect(page.get_by_role("button", name="Unfollow Rowing", exact=True)).to_be_visible()

    # "Following" lists the section's stories, and only those.
    page.get_by_role("link", name="Following", exact=True).click()
    expect(page.get_by_role("heading", name="New boathouse opens on the river")).to_be_visible()
    expect(page.get_by_role("heading", name="Lake regatta moves to spring")).to_be_visible()
    expect(page.get_by_text("Parliament debates the budget")).to_have_count(0)

    # Save a story for later.
    page.goto(other.get_absolute_url())
    page.get_by_role("button", name="Save for later").click()
    expect(page.get_by_role("button", name="Remove from saved")).to_be_visible()
    page.goto("/saved/")
    expect(page.get_by_role("link", name="New boathouse opens on the river")).to_be_visible()

    # Ask for a daily digest in Oslo, at the hour two hours from now there: the digest is due within two
    # hours, and covers the day before it, when both stories were published. (A fixed hour that had
    # just passed would cover only the day to come, and find nothing new.)
    digest_hour = (timezone.now().astimezone(ZoneInfo("Europe/Oslo")) + timedelta(hours=2)).hour
    page.goto("/digest/")
    page.get_by_label("Daily").check()
    page.get_by_label("At").select_option(str(digest_hour))
    page.get_by_label("Time zone").select_option("Europe/Oslo")
    page.get_by_role("button", name="Save digest settings").click()
    expect(page.get_by_role("status").filter(has_text="Your digest settings are saved.")).to_be_visible()
    chosen = DigestSettings.objects.get(reader=reader)
    assert (chosen.frequency, chosen.hour, chosen.time_zone) == ("daily", digest_hour, "Europe/Oslo")

    # The hour comes: the hourly run mails the digest.
    run = digests.send_due_digests(now=chosen.next_due_at + timedelta(minutes=1))
    assert run.sent == 1
    message = mail.outbox[-1]
    assert message.to == [reader.email]
    assert "New boathouse opens on the river" in message.body
    assert "Parliament debates the budget" not in message.body
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # Follow the unsubscribe link from the mail: a confirmation page, then done.
    link = message.extra_headers["List-Unsubscribe"].strip("<>")
    assert link in message.body
    page.goto(urlsplit(link).path)
    page.get_by_role("button", name="Stop digest emails").click()
    expect(page.get_by_text("you will get no more digest emails")).to_be_visible()
    assert DigestSettings.objects.get(reader=reader).frequency == "off"
