"""Readers report wrong labels; moderators confirm (a correction) or dismiss them from the admin queue."""

import re

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from stories import pagecache
from stories.models import LabelCorrection, LabelReport
from tests.factories import SectionFactory, StoryFactory, TagFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sections():
    return {
        slug: SectionFactory(name=slug.title(), slug=slug) for slug in ("business", "technology", "sport", "culture")
    }


@pytest.fixture
def story(sections):
    return StoryFactory(
        title="Chipmaker's shares jump on record orders",
        section=sections["technology"],
        tags=[TagFactory(name="Chips", slug="chips"), TagFactory(name="Football", slug="football")],
    )


@pytest.fixture
def moderator():
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    return user


def report_url(story) -> str:
    return f"/stories/{story.slug}/report-label/"


def send(client, story, **data):
    return client.post(report_url(story), {"kind": "section", "suggested_section": "", "suggestion": "", **data})


def test_visitors_get_no_report_form(client, story):
    html = client.get(story.get_absolute_url()).content.decode()

    assert "Is a label wrong?" not in html
    assert report_url(story) not in html


def test_signed_in_reader_sees_the_form_with_the_other_sections_and_the_storys_tags(client, reader, story, sections):
    client.force_login(reader)

    html = client.get(story.get_absolute_url()).content.decode()

    assert "Is a label wrong?" in html
    assert f'action="{report_url(story)}"' in html
    assert "csrfmiddlewaretoken" in html
    assert "Wrong section (Technology)" in html
    offered = re.findall(r'<option value="(\d+)">([^<]+)</option>', html)
    assert ("Technology" not in {name for _, name in offered}) and {"Business", "Sport", "Culture"} <= {
        name for _, name in offered
    }
    assert {"Chips", "Football"} <= {name for _, name in offered}


def page_queries(client, story) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(story.get_absolute_url()).status_code == 200
    return len(queries)


def test_the_signed_in_story_page_costs_a_fixed_number_of_queries(client, reader, settings, sections):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    client.force_login(reader)
    small = StoryFactory(tags=TagFactory.create_batch(1))
    large = StoryFactory(tags=TagFactory.create_batch(12))
    SectionFactory.create_batch(6)
    for other in UserFactory.create_batch(3):
        LabelReport.objects.create(story=large, reporter=other, kind="section")
    client.get(small.get_absolute_url())  # the first answer gives the reader the CSRF cookie their parts go with
    client.get(small.get_absolute_url())
    client.get(large.get_absolute_url())  # kept for every reader; this reader's views counted once

    # Their parts were kept with the shared page, and their account and session are cached: no query.
    assert page_queries(client, small) == page_queries(client, large) == 0
    # Once the reader does anything, their parts are made anew from the shared page, and their facts with
    # them, once for every page: their standing as a commenter, the stories they commented on,
    # have comments awaiting moderation on, recommended comments on, reported the labels of and saved, and
    # what they follow. What the parts look up about the page (the story, its tags, the sections) is kept
    # in the process for that version of the page.
    pagecache.reader_did_something(reader.pk)
    assert page_queries(client, small) == 7
    assert page_queries(client, large) == 0
    # Rendered anew for every request, with nothing kept but the account and the fragments the page is made
    # of (the story's article, the thread's first page): the parts' queries (the story and its tags, the sections,
    # and the facts the story page asks for: all but the stories the reader commented on and recommended
    # on, since the story has no comments).
    settings.VISITOR_PAGE_CACHE_SECONDS = 0
    assert page_queries(client, small) == page_queries(client, large) == 8


def test_reader_reports_a_wrong_section_with_a_suggestion(client, reader, story, sections):
    client.force_login(reader)

    response = send(client, story, suggested_section=sections["business"].pk, suggestion="It is about the shares")

    assert response.status_code == 302
    assert response["Location"] == f"{story.get_absolute_url()}#label-report"
    report = LabelReport.objects.get()
    assert (report.story, report.reporter, report.kind) == (story, reader, "section")
    assert (report.suggested_section, report.suggestion, report.status) == (
        sections["business"],
        "It is about the shares",
        "open",
    )
    page = client.get(response["Location"]).content.decode()
    assert "Thank you for the report. A moderator will look at this story&#x27;s labels." in page
    assert "You have reported this story's labels." in page
    assert "Send report" not in page


def test_reader_reports_a_wrong_tag(client, reader, story):
    client.force_login(reader)
    football = story.tags.get(slug="football")

    send(client, story, kind="tag", tag=football.pk, suggestion="Semiconductors")

    report = LabelReport.objects.get()
    assert (report.kind, report.tag, report.suggested_section, report.suggestion) == (
        "tag",
        football,
        None,
        "Semiconductors",
    )


def test_a_wrong_tag_report_must_name_one_of_the_storys_tags(client, reader, story):
    client.force_login(reader)
    elsewhere = TagFactory(name="Elsewhere", slug="elsewhere")

    missing = send(client, story, kind="tag")
    foreign = send(client, story, kind="tag", tag=elsewhere.pk)

    assert missing.status_code == foreign.status_code == 422
    assert "Choose the tag that is wrong." in missing.content.decode()
    assert not LabelReport.objects.exists()


def test_suggesting_the_current_section_is_refused_with_a_reason(client, reader, story, sections):
    client.force_login(reader)

    response = send(client, story, suggested_section=sections["technology"].pk)

    assert response.status_code == 422
    assert "Technology is the story&#x27;s section already" in response.content.decode()


def test_one_report_per_reader_per_story(client, reader, story, sections):
    client.force_login(reader)
    send(client, story)

    again = send(client, story, suggested_section=sections["sport"].pk)

    assert again.status_code == 409
    assert "You have already reported this story&#x27;s labels" in again.content.decode()
    assert LabelReport.objects.count() == 1
    other_reader = Client()
    other_reader.force_login(UserFactory())
    assert send(other_reader, story).status_code == 302
    assert LabelReport.objects.count() == 2


def test_reports_are_rate_limited_per_reader_with_a_clear_message(client, reader, settings, sections):
    settings.LABEL_REPORTS_PER_HOUR = 3
    client.force_login(reader)
    stories = StoryFactory.create_batch(5, section=sections["sport"])

    statuses = [send(client, one).status_code for one in stories[:3]]
    refused = send(client, stories[3])
    refused_again = send(client, stories[4])

    assert statuses == [302, 302, 302]
    assert refused.status_code == refused_again.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 3601
    assert "You have sent 3 label reports this hour, the most we take from one reader." in refused.content.decode()
    assert LabelReport.objects.count() == 3
    someone_else = Client()
    someone_else.force_login(UserFactory())
    assert send(someone_else, stories[3]).status_code == 302


def test_repeated_and_invalid_reports_count_towards_the_limit(client, reader, story, settings):
    settings.LABEL_REPORTS_PER_HOUR = 3
    client.force_login(reader)

    statuses = [send(client, story).status_code for _ in range(2)]
    statuses += [send(client, story, kind="nonsense").status_code for _ in range(2)]

    assert statuses == [302, 409, 422, 429]


def test_reports_need_a_signed_in_reader_with_a_verified_address_and_a_csrf_token(story):
    visitor = Client()
    response = send(visitor, story)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")

    unverified = Client()
    unverified.force_login(UserFactory(verified=False))
    refused = send(unverified, story)
    assert refused.status_code == 403
    assert "Please verify your email address before reporting labels." in refused.content.decode()

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(UserFactory())
    assert send(strict, story).status_code == 403
    assert strict.get(report_url(story)).status_code == 405
    assert not LabelReport.objects.exists()


def test_hidden_stories_cannot_be_reported(client, reader, sections):
    hidden = StoryFactory(status="hidden", section=sections["sport"])
    client.force_login(reader)

    assert send(client, hidden).status_code == 404


# --- The moderators' queue ------------------------------------------------------------------------------


def reports_by(count: int, story, **fields) -> list[LabelReport]:
    return [LabelReport.objects.create(story=story, reporter=UserFactory(), **fields) for _ in range(count)]


def test_the_queue_shows_the_label_most_readers_reported_first(client, moderator, sections):
    once = StoryFactory(title="Reported once", section=sections["sport"])
    thrice = StoryFactory(title="Reported by three readers", section=sections["sport"])
    reports_by(1, once, kind="section")
    reports_by(3, thrice, kind="section", suggested_section=sections["culture"])
    client.force_login(moderator)

    response = client.get("/admin/stories/labelreport/")

    assert response.status_code == 200
    listed = [report.story.title for report in response.context["cl"].result_list]
    assert listed == ["Reported by three readers"] * 3 + ["Reported once"]
    assert "Sport → Culture" in response.content.decode()
    first = response.context["cl"].result_list[0]
    assert client.get(f"/admin/stories/labelreport/{first.pk}/change/").status_code == 200


def test_moderator_confirms_a_section_report_and_it_becomes_a_correction(
    client, moderator, story, sections, django_capture_on_commit_callbacks
):
    first, second = reports_by(2, story, kind="section", suggested_section=sections["business"])
    unrelated = reports_by(1, story, kind="tag", tag=story.tags.get(slug="football"))[0]
    client.force_login(moderator)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            "/admin/stories/labelreport/", {"action": "confirm", "_selected_action": [first.pk, second.pk]}, follow=True
        )

    assert "2 reports confirmed; 1 corrections recorded" in response.content.decode()
    story.refresh_from_db()
    assert story.section == sections["business"]
    correction = LabelCorrection.objects.get()
    assert (correction.field, correction.value, correction.previous_value) == ("section", "business", "technology")
    assert correction.corrected_by == moderator
    for report in (first, second):
        report.refresh_from_db()
        assert (report.status, report.handled_by, report.correction) == ("confirmed", moderator, correction)
        assert report.handled_at is not None
    unrelated.refresh_from_db()
    assert unrelated.status == "open"
    # The new correction counts towards the labeller's next refit.
    assert [callback.__name__ for callback in callbacks].count("refit_if_due") == 1


def test_moderator_confirms_a_tag_report(client, moderator, story):
    report = reports_by(1, story, kind="tag", tag=story.tags.get(slug="football"), suggestion="Semiconductors")[0]
    client.force_login(moderator)

    client.post("/admin/stories/labelreport/", {"action": "confirm", "_selected_action": [report.pk]})

    assert sorted(story.tags.values_list("name", flat=True)) == ["Chips", "Semiconductors"]
    correction = LabelCorrection.objects.get()
    assert (correction.field, correction.value, correction.previous_value) == (
        "tags",
        ["Chips", "Semiconductors"],
        ["Chips", "Football"],
    )
    report.refresh_from_db()
    assert report.status == "confirmed" and report.correction == correction


def test_a_section_report_without_a_suggestion_is_left_for_the_story_page(client, moderator, story):
    report = reports_by(1, story, kind="section")[0]
    client.force_login(moderator)

    response = client.post(
        "/admin/stories/labelreport/", {"action": "confirm", "_selected_action": [report.pk]}, follow=True
    )

    assert "no section suggested; correct it on the story&#x27;s page" in response.content.decode()
    report.refresh_from_db()
    assert report.status == "open"
    assert not LabelCorrection.objects.exists()


def test_moderator_dismisses_reports_and_the_labels_stay(client, moderator, story, sections):
    report = reports_by(1, story, kind="section", suggested_section=sections["sport"])[0]
    client.force_login(moderator)

    response = client.post(
        "/admin/stories/labelreport/", {"action": "dismiss", "_selected_action": [report.pk]}, follow=True
    )

    assert "1 reports dismissed; the labels are unchanged." in response.content.decode()
    report.refresh_from_db()
    assert (report.status, report.handled_by) == ("dismissed", moderator)
    story.refresh_from_db()
    assert story.section == sections["technology"]
    assert not LabelCorrection.objects.exists()


def test_moderators_may_handle_reports_but_not_add_them(moderator):
    assert moderator.has_perm("stories.view_labelreport")
    assert moderator.has_perm("stories.change_labelreport")
    assert not moderator.has_perm("stories.add_labelreport")


def test_the_database_keeps_one_report_per_reader_per_story(reader, story):
    from django.db import IntegrityError, transaction

    LabelReport.objects.create(story=story, reporter=reader, kind="section")
    with pytest.raises(IntegrityError), transaction.atomic():
        LabelReport.objects.create(story=story, reporter=reader, kind="tag")
