"""The moderation desk in the admin, used by a moderator who is not a superuser."""

import re
from datetime import date, timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from comments import services
from comments.models import Comment, Commenter, ModerationLog, ModerationRule
from tests.factories import CommentFactory, SectionFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules")]

Status = Comment.Status
QUEUE = "/admin/comments/comment/"
COMMENTERS = "/admin/comments/commenter/"


@pytest.fixture
def desk(client, moderator):
    assert not moderator.is_superuser
    client.force_login(moderator)
    return client


def act(client, url, action, objects, **fields):
    """Choose a bulk action, then confirm it on the page that asks."""
    data = {"action": action, ACTION_CHECKBOX_NAME: [obj.pk for obj in objects], "index": 0, **fields}
    asked = client.post(url, data)
    assert asked.status_code == 200, asked.content[:500]
    assert "Are you sure?" in asked.content.decode()
    confirmed = {key: value for key, value in data.items() if key != "index"}
    return asked, client.post(url, {**confirmed, "confirmed": "yes"}, follow=True)


def test_queue_opens_on_comments_awaiting_moderation_with_the_reason(desk, rules, story, author):
    rules("suspect_words", words="casino")
    held = services.comment_create(story=story, author=author, body="casino royale")
    published = CommentFactory(story=story, body_source="ordinary")

    html = desk.get(QUEUE).content.decode()

    assert "casino royale" in html
    assert "Suspect words: contains the suspect “casino”" in html
    assert f"/admin/comments/comment/{published.pk}/change/" not in html
    assert f"/admin/comments/comment/{held.pk}/change/" in html


@pytest.mark.parametrize(
    ("queue", "shown", "hidden"),
    [
        ("reported", "reported one", "plain one"),
        ("rejected", "rejected one", "plain one"),
        ("all", "plain one", "nothing hidden"),
    ],
)
def test_queues(desk, story, queue, shown, hidden):
    CommentFactory(story=story, body_source="plain one", body_html="<p>plain one</p>")
    CommentFactory(story=story, body_source="reported one", body_html="<p>reported one</p>", open_report_count=2)
    CommentFactory(story=story, body_source="rejected one", body_html="<p>rejected one</p>", status=Status.REJECTED)

    html = desk.get(QUEUE, {"queue": queue}).content.decode()

    assert shown in html
    assert hidden not in html


def test_filters_by_story_section_author_and_reason_and_search_by_text(desk):
    sport = SectionFactory(name="Sport", slug="sport")
    story = StoryFactory(section=sport)
    ana = UserFactory(username="ana")
    match = CommentFactory(story=story, author=ana, body_source="needle text", body_html="<p>needle text</p>")
    other = CommentFactory(body_source="haystack", body_html="<p>haystack</p>")
    pending = CommentFactory(story=story, status=Status.PENDING, reason_code="links", body_html="<p>linky</p>")

    def listed(**params):
        html = desk.get(QUEUE, {"queue": "all", **params}).content.decode()
        return {c.pk for c in (match, other, pending) if f"/admin/comments/comment/{c.pk}/change/" in html}

    assert listed(story=story.pk) == {match.pk, pending.pk}
    assert listed(story__section__id__exact=sport.pk) == {match.pk, pending.pk}
    assert listed(author=ana.pk) == {match.pk}
    assert listed(reason="links") == {pending.pk}
    assert listed(q="needle") == {match.pk}


def test_comment_page_shows_it_as_readers_see_it_with_its_parent(desk, story):
    parent = CommentFactory(story=story, body_html="<p>The <em>parent</em> said</p>")
    reply = CommentFactory(
        parent=parent, body_html='<p>A <a href="https://example.org" rel="nofollow ugc noopener">reply</a></p>'
    )

    html = desk.get(f"{QUEUE}{reply.pk}/change/").content.decode()

    assert '<p>A <a href="https://example.org" rel="nofollow ugc noopener">reply</a></p>' in html
    assert "<p>The <em>parent</em> said</p>" in html
    assert 'name="body_source"' not in html  # nothing on the page edits the text


def test_approving_asks_for_confirmation_then_publishes_and_logs_the_moderator(desk, moderator, story):
    held = CommentFactory.create_batch(2, story=story, status=Status.PENDING)

    asked, done = act(desk, QUEUE, "approve", held)

    assert "This applies to 2 comments" in asked.content.decode()
    assert Comment.objects.filter(status=Status.VISIBLE).count() == 2
    assert "2 comments approved." in done.content.decode()
    assert ModerationLog.objects.filter(action="approved", moderator=moderator).count() == 2
    story.refresh_from_db()
    assert story.comment_count == 2


def test_rejecting_needs_a_reason_code(desk, story):
    comment = CommentFactory(story=story, status=Status.PENDING)

    response = desk.post(QUEUE, {"action": "reject", ACTION_CHECKBOX_NAME: [comment.pk], "index": 0}, follow=True)

    assert "Choose a reason" in response.content.decode()
    comment.refresh_from_db()
    assert comment.status == Status.PENDING


@pytest.mark.parametrize(
    ("action", "fields", "status", "code"),
    [
        ("reject", {"reason_code": "off_topic"}, Status.REJECTED, "off_topic"),
        ("mark_spam", {}, Status.REJECTED, "spam"),
        ("remove", {"reason_code": "abuse"}, Status.REMOVED, "abuse"),
    ],
)
def test_taking_comments_down_in_bulk(desk, story, action, fields, status, code):
    comments = CommentFactory.create_batch(3, story=story)

    _, done = act(desk, f"{QUEUE}?queue=published", action, comments, **fields)

    assert done.status_code == 200
    assert set(Comment.objects.values_list("status", "reason_code")) == {(status, code)}
    story.refresh_from_db()
    assert story.comment_count == 0


def test_a_bulk_action_says_which_comments_it_could_not_change(desk, story, author):
    comment = services.comment_create(story=story, author=author, body="soon gone")
    services.comment_delete(comment=comment, user=author)

    _, done = act(desk, f"{QUEUE}?queue=all", "approve", [comment])

    assert f"#{comment.pk}: Its author deleted this comment" in done.content.decode()


def test_suspending_a_commenter_until_a_date(desk, moderator, author):
    commenter = Commenter.objects.get(user=author)
    until = date.today() + timedelta(days=7)

    _, done = act(desk, COMMENTERS, "suspend", [commenter], until=until.isoformat(), reason="flame war")

    commenter.refresh_from_db()
    assert commenter.suspended_until.date() == until
    assert "1 commenter suspended until" in done.content.decode()
    entry = ModerationLog.objects.get(subject=author, action="suspended")
    assert entry.moderator == moderator
    assert "flame war" in entry.reason


def test_ban_and_reject_all_their_comments(desk, story, author):
    commenter = Commenter.objects.get(user=author)
    CommentFactory.create_batch(2, story=story, author=author)

    act(desk, COMMENTERS, "ban_and_reject", [commenter], reason="spammer")

    commenter.refresh_from_db()
    assert commenter.is_banned
    assert set(Comment.objects.filter(author=author).values_list("status", flat=True)) == {Status.REJECTED}


def test_always_premoderate_is_an_action_too(desk, author):
    commenter = Commenter.objects.get(user=author)

    desk.post(COMMENTERS, {"action": "premoderate", ACTION_CHECKBOX_NAME: [commenter.pk], "index": 0})

    commenter.refresh_from_db()
    assert commenter.always_premoderate
    assert ModerationLog.objects.filter(subject=author, action="premoderated").exists()


def test_the_commenters_record_shows_their_history(desk, moderator, story, author):
    CommentFactory(story=story, author=author, body_html="<p>an old remark</p>")
    services.commenter_set_premoderation(user=author, moderator=moderator, enabled=True, reason="warned twice")

    html = desk.get(f"{COMMENTERS}{author.pk}/change/").content.decode()

    assert "an old remark" in html
    assert "warned twice" in html
    assert f"?author={author.pk}" in html


def test_changing_the_record_goes_through_the_log(desk, moderator, author):
    until = timezone.localtime() + timedelta(days=3)

    response = desk.post(
        f"{COMMENTERS}{author.pk}/change/",
        {
            "suspended_until_0": until.strftime("%Y-%m-%d"),
            "suspended_until_1": until.strftime("%H:%M:%S"),
            "always_premoderate": "on",
            "moderation_note": "cooling off",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    actions = set(ModerationLog.objects.filter(subject=author, moderator=moderator).values_list("action", flat=True))
    assert actions == {"suspended", "premoderated"}


def test_moderation_log_is_read_only_even_for_moderators(desk, story, author):
    services.comment_create(story=story, author=author, body="logged")
    entry = ModerationLog.objects.get()

    assert desk.get("/admin/comments/moderationlog/").status_code == 200
    assert desk.get(f"/admin/comments/moderationlog/{entry.pk}/change/").status_code == 200
    assert desk.post(f"/admin/comments/moderationlog/{entry.pk}/change/", {"reason": "rewritten"}).status_code == 403
    assert desk.get(f"/admin/comments/moderationlog/{entry.pk}/delete/").status_code == 403
    assert desk.get("/admin/comments/moderationlog/add/").status_code == 403


def test_moderation_log_filters_by_who_decided(desk, moderator, story, author):
    comment = services.comment_create(story=story, author=author, body="logged")
    services.comment_remove(comment=comment, moderator=moderator, reason_code="abuse")

    def reasons(by):
        html = desk.get("/admin/comments/moderationlog/", {"by": by}).content.decode()
        return re.findall(r'<td class="field-reason_code">([^<]*)</td>', html)

    assert reasons("moderator") == ["Abuse or harassment"]
    assert reasons("rule") == ["Passed every rule"]


def test_moderators_edit_rules_and_get_told_what_is_missing(desk):
    missing = desk.post(
        "/admin/comments/moderationrule/add/", {"name": "Words", "kind": "banned_words", "is_active": "on"}
    )
    added = desk.post(
        "/admin/comments/moderationrule/add/",
        {"name": "Words", "kind": "banned_words", "is_active": "on", "words": "darn\nheck"},
    )

    assert "List at least one word or phrase." in missing.content.decode()
    assert added.status_code == 302
    assert ModerationRule.objects.get(name="Words").word_list() == ["darn", "heck"]


def test_moderators_see_nothing_they_do_not_need(desk):
    assert desk.get("/admin/auth/user/").status_code == 403
    assert desk.get("/admin/auth/group/").status_code == 403
    assert desk.get("/admin/comments/comment/add/").status_code == 403
    assert desk.get(f"{COMMENTERS}add/").status_code == 403


def test_a_comment_is_decided_from_its_own_page(desk, story):
    comment = CommentFactory(story=story, status=Status.PENDING)

    page = desk.get(f"{QUEUE}{comment.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert 'class="moderation-decision"' in page

    asked = desk.post(
        f"{QUEUE}?queue=all",
        {"action": "remove", ACTION_CHECKBOX_NAME: [comment.pk], "index": 0, "reason_code": "abuse"},
    )
    assert "Are you sure?" in asked.content.decode()
    desk.post(
        f"{QUEUE}?queue=all",
        {"action": "remove", ACTION_CHECKBOX_NAME: [comment.pk], "reason_code": "abuse", "confirmed": "yes"},
    )
    comment.refresh_from_db()
    assert (comment.status, comment.reason_code) == (Status.REMOVED, "abuse")


def test_every_account_has_a_record_moderators_can_find(desk):
    UserFactory(username="quiet_reader")

    html = desk.get(COMMENTERS, {"q": "quiet_reader"}).content.decode()

    assert "quiet_reader" in html
    assert "In good standing" in html


# --- What a moderator sees first -------------------------------------------------------------


def test_admin_index_shows_what_awaits_moderation_with_links_to_the_queues(desk, story, other_reader):
    CommentFactory.create_batch(2, story=story, status=Status.PENDING)
    reported = CommentFactory(story=story, body_source="reported one")
    services.comment_report(comment=reported, reporter=other_reader, reason="spam")
    services.comment_report(comment=reported, reporter=UserFactory(), reason="abuse")

    html = desk.get("/admin/").content.decode()

    assert re.search(
        r'<a href="/admin/comments/comment/\?queue=pending"><strong>2</strong> comments awaiting moderation</a>', html
    )
    assert re.search(r'<a href="/admin/comments/comment/\?queue=reported"><strong>2</strong> open reports</a>', html)
    assert "on 1 comment" in html
    assert "System status" in html
    queue = desk.get(f"{QUEUE}?queue=reported").content.decode()
    assert f"/admin/comments/comment/{reported.pk}/change/" in queue


def test_admin_index_counts_one_report_and_nothing_waiting(desk, story):
    services.comment_report(comment=CommentFactory(story=story), reporter=UserFactory(), reason="spam")

    html = desk.get("/admin/").content.decode()

    assert "<strong>0</strong> comments awaiting moderation" in html
    assert "<strong>1</strong> open report</a> on 1 comment" in html


def test_admin_index_shows_no_counts_to_staff_who_cannot_moderate(client, story):
    CommentFactory(story=story, status=Status.PENDING)
    client.force_login(UserFactory(username="editor", is_staff=True))

    html = client.get("/admin/").content.decode()

    assert "awaiting moderation" not in html
    assert "System status" in html


def test_admin_index_costs_the_same_queries_however_much_waits(desk, story, django_assert_num_queries):
    desk.get("/admin/")
    with CaptureQueriesContext(connection) as nothing_waiting:
        desk.get("/admin/")
    CommentFactory.create_batch(5, story=story, status=Status.PENDING)

    with django_assert_num_queries(len(nothing_waiting.captured_queries)):
        desk.get("/admin/")


# --- The queue fits a laptop screen ----------------------------------------------------------


def test_queue_shortens_long_story_titles_and_keeps_the_whole_title_as_a_tooltip(desk, story):
    title = "Harbour ferries switch to shore power after a decade of complaints about diesel fumes"
    long_titled = StoryFactory(title=title)
    CommentFactory(story=long_titled, status=Status.PENDING)

    html = desk.get(QUEUE).content.decode()

    assert f'title="{title}">Harbour ferries switch to shore power a…</a>' in html
    assert f">{title}<" not in html


def test_queue_has_compact_columns_and_its_stylesheet(desk, story):
    CommentFactory(story=story, status=Status.PENDING)

    html = desk.get(QUEUE).content.decode()

    assert "column-reports" in html and "column-posted" in html
    assert "column-open_report_count" not in html and "column-created_at" not in html
    assert "admin-extra/comments.css" in html


def test_queue_list_display_shortens_the_story_title():
    from django.contrib import admin as django_admin

    from comments.admin import STORY_TITLE_LENGTH

    comment_admin = django_admin.site._registry[Comment]
    comment = CommentFactory(story=StoryFactory(title="x" * 100))

    link = comment_admin.story_link(comment)

    assert "x" * STORY_TITLE_LENGTH not in link.split(">")[1]
    assert ("x" * (STORY_TITLE_LENGTH - 1) + "…</a") in link


# --- The moderation log reads right ----------------------------------------------------------


def test_moderation_log_footer_counts_entries(desk, story, author, settings):
    for number in range(8):
        services.comment_create(story=story, author=author, body=f"logged {number}")

    html = desk.get("/admin/comments/moderationlog/").content.decode()

    assert "8 moderation log entries" in html
    assert "8 moderation log\n" not in html and "8 moderation log<" not in html


def test_moderation_log_names_the_reader_who_reported(desk, story, author, other_reader):
    comment = services.comment_create(story=story, author=author, body="reported")
    services.comment_report(comment=comment, reporter=other_reader, reason="spam")

    html = desk.get("/admin/comments/moderationlog/", {"action__exact": "reported"}).content.decode()

    assert re.findall(r'<td class="field-decided_by">([^<]*)</td>', html) == ["bea"]
    assert "automatic" not in re.findall(r'<td class="field-decided_by">([^<]*)</td>', html)
