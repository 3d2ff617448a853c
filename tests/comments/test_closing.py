"""Comments close on their own N days after publication, by a moderation rule for a source, a section or every
story; a closed thread stays readable and says "Comments are closed.", and no page offers the form once the
moment has passed, cached or not."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from comments import moderation, services
from comments.errors import NotAllowed
from comments.models import Comment, ModerationLog, ModerationRule
from stories.models import Story
from tests.factories import CommentFactory, SectionFactory, SourceFactory, StoryFactory, UserFactory

pytestmark = pytest.mark.django_db


def post(story, author, body="Still thinking about this one.") -> Comment:
    return services.comment_create(story=story, author=author, body=body)


def published_days_ago(days: float, **fields) -> Story:
    return StoryFactory(published_at=timezone.now() - timedelta(days=days), **fields)


def close_after(rules, days: int, **fields) -> ModerationRule:
    rule = rules("close_after", limit=days, **fields)
    moderation.forget_cached_rules()
    return rule


def thread(client, story) -> str:
    response = client.get(f"/comments/{story.slug}/thread/")
    assert response.status_code == 200
    return response.content.decode()


def comments_section(html: str) -> str:
    start = html.index('<section id="comments"')
    return html[start : html.index("</section>", start)]


# --- The rule --------------------------------------------------------------------------------


def test_without_a_closing_rule_old_stories_stay_open(rules, author):
    story = published_days_ago(3650)

    assert post(story, author).status == Comment.Status.VISIBLE


def test_comments_close_n_days_after_publication_and_the_log_names_the_rule(rules, author):
    rule = close_after(rules, 7, name="A week of comments")
    story = published_days_ago(7.01)

    with pytest.raises(NotAllowed) as refused:
        post(story, author)

    assert refused.value.message == "Comments are closed."
    assert refused.value.code == "closed"
    entry = ModerationLog.objects.get(story=story, subject=author)
    assert (entry.action, entry.rule, entry.rule_name) == (ModerationLog.Action.REFUSED, rule, "A week of comments")
    assert entry.reason == "comments close 7 days after publication"


def test_comments_stay_open_until_the_moment(rules, author):
    close_after(rules, 7)
    story = published_days_ago(6.99)

    assert post(story, author).status == Comment.Status.VISIBLE
    assert moderation.comments_close_at(story, moderation.active_rules()) == story.published_at + timedelta(days=7)


def test_a_rules_own_message_is_what_the_reader_is_told(rules, author):
    close_after(rules, 2, message="This discussion has ended; thank you for taking part.")

    with pytest.raises(NotAllowed, match="This discussion has ended"):
        post(published_days_ago(3), author)


def test_a_rule_for_a_source_closes_only_that_sources_stories(rules, author):
    wire = SourceFactory(name="Wire service")
    close_after(rules, 1, source=wire)

    with pytest.raises(NotAllowed):
        post(published_days_ago(2, source=wire), author)
    assert post(published_days_ago(2), author).status == Comment.Status.VISIBLE


def test_a_rule_for_a_section_closes_only_that_sections_stories(rules, author):
    elections = SectionFactory(name="Elections", slug="elections")
    close_after(rules, 1, section=elections)

    with pytest.raises(NotAllowed):
        post(published_days_ago(2, section=elections), author)
    assert post(published_days_ago(2), author).status == Comment.Status.VISIBLE
    assert post(published_days_ago(2, section=None), author).status == Comment.Status.VISIBLE


def test_a_rule_naming_a_source_and_a_section_needs_both(rules, author):
    wire = SourceFactory()
    elections = SectionFactory(name="Elections", slug="elections")
    close_after(rules, 1, source=wire, section=elections)

    with pytest.raises(NotAllowed):
        post(published_days_ago(2, source=wire, section=elections), author)
    assert post(published_days_ago(2, source=wire), author).status == Comment.Status.VISIBLE
    assert post(published_days_ago(2, section=elections), author).status == Comment.Status.VISIBLE


def test_the_shortest_applicable_rule_wins(rules, author):
    elections = SectionFactory(name="Elections", slug="elections")
    close_after(rules, 30)
    close_after(rules, 2, section=elections)
    story = published_days_ago(3, section=elections)

    assert moderation.comments_close_at(story, moderation.active_rules()) == story.published_at + timedelta(days=2)
    with pytest.raises(NotAllowed):
        post(story, author)
    assert post(published_days_ago(3), author).status == Comment.Status.VISIBLE


def test_an_inactive_rule_closes_nothing(rules, author):
    rule = close_after(rules, 1)
    ModerationRule.objects.filter(pk=rule.pk).update(is_active=False)
    moderation.forget_cached_rules()

    assert post(published_days_ago(5), author).status == Comment.Status.VISIBLE


def test_editing_after_the_closing_is_refused_but_reporting_is_not(rules, author, other_reader):
    story = published_days_ago(5)
    mine = CommentFactory(story=story, author=author)
    theirs = CommentFactory(story=story, author=other_reader)
    close_after(rules, 4)

    with pytest.raises(NotAllowed, match=r"Comments are closed\."):
        services.comment_edit(comment=mine, editor=author, body="A second thought.")
    assert services.comment_report(comment=theirs, reporter=author, reason="spam").pk


def test_a_moderators_closing_and_a_site_wide_closing_keep_their_own_wording(rules, author):
    close_after(rules, 1)
    closed_by_hand = published_days_ago(5, comments_mode=Story.CommentsMode.CLOSED)

    with pytest.raises(NotAllowed, match=r"Comments are closed on this story\."):
        post(closed_by_hand, author)
    rules("close_all", message="Back after the election.")
    moderation.forget_cached_rules()
    with pytest.raises(NotAllowed, match=r"Back after the election\."):
        post(published_days_ago(5), author)


# --- The rule as moderators edit it ----------------------------------------------------------


def test_only_a_closing_rule_may_name_a_source_or_section():
    rule = ModerationRule(name="Links", kind="links", limit=2, source=SourceFactory(), section=SectionFactory())

    with pytest.raises(ValidationError) as invalid:
        rule.full_clean()

    assert set(invalid.value.message_dict) == {"source", "section"}
    with pytest.raises(IntegrityError), transaction.atomic():
        rule.save()


def test_a_closing_rule_needs_its_number_of_days_within_a_century():
    with pytest.raises(ValidationError) as missing:
        ModerationRule(name="Close", kind="close_after").full_clean()
    with pytest.raises(ValidationError) as too_long:
        ModerationRule(name="Close", kind="close_after", limit=40_000).full_clean()

    assert "limit" in missing.value.message_dict and "limit" in too_long.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        ModerationRule.objects.create(name="Close", kind="close_after", limit=40_000)


def test_moderators_add_a_closing_rule_for_a_section_in_the_admin(rules, moderator, client):
    elections = SectionFactory(name="Elections", slug="elections")
    client.force_login(moderator)

    response = client.post(
        "/admin/comments/moderationrule/add/",
        {"name": "Elections: a week", "kind": "close_after", "is_active": "on", "limit": "7", "section": elections.pk},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    rule = ModerationRule.objects.get(name="Elections: a week")
    assert (rule.kind, rule.limit, rule.section, rule.source) == ("close_after", 7, elections, None)


# --- The thread ------------------------------------------------------------------------------


def test_a_closed_thread_stays_readable_and_says_comments_are_closed(rules, client, author):
    close_after(rules, 7)
    story = published_days_ago(8)
    CommentFactory(story=story, body_source="Worth the wait.", body_html="<p>Worth the wait.</p>")

    for reader in (None, author):
        if reader:
            client.force_login(reader)
        section = comments_section(client.get(story.get_absolute_url()).content.decode())

        assert "<p>Worth the wait.</p>" in section
        assert section.count("Comments are closed.") == 1
        assert "Log in to comment." not in section
        assert 'name="body"' not in section, "no comment form"
        assert "/reply/" not in section
    client.logout()
    thread_page = client.get(f"/comments/{story.slug}/").content.decode()
    assert "<p>Worth the wait.</p>" in thread_page
    assert "Comments are closed." in thread_page and "Log in to comment." not in thread_page


def test_an_open_thread_offers_the_form_and_no_closing_notice(rules, client, author):
    close_after(rules, 7)
    story = published_days_ago(6)
    client.force_login(author)

    section = comments_section(client.get(story.get_absolute_url()).content.decode())

    assert f'action="/comments/{story.slug}/post/"' in section
    assert "Comments are closed." not in section


def test_a_page_cached_before_the_closing_never_offers_the_form_after_it(rules, settings, author):
    """The page cache keeps a story's page for everyone; the form is each reader's own part of it, decided
    when they ask, so the cached copy cannot hand it out once the moment has passed."""
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    close_after(rules, 7)
    story = published_days_ago(6)
    Client().get(story.get_absolute_url())
    assert Client().get(story.get_absolute_url())["X-Page-Cache"] == "hit"
    # Time passes: the story is now past its closing moment, and nothing invalidated its cached page.
    Story.objects.filter(pk=story.pk).update(published_at=timezone.now() - timedelta(days=7, seconds=1))
    reader = Client()
    reader.force_login(author)

    section = comments_section(reader.get(story.get_absolute_url()).content.decode())

    assert 'name="body"' not in section
    assert "Comments are closed." in section


def test_visitors_cached_page_is_kept_no_longer_than_the_thread_stays_open(rules, settings, redis_client):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    close_after(rules, 7)
    closes_soon = published_days_ago(7 - 10 / 86400)  # ten seconds before its comments close
    stays_open = published_days_ago(1)

    for story in (closes_soon, stays_open):
        Client().get(story.get_absolute_url())

    pages = [key for key in redis_client.keys("newsreader:pages:*") if b":generation:" not in key]
    kept_for = sorted(redis_client.ttl(key) for key in pages)
    assert len(kept_for) == 2
    assert 8 <= kept_for[0] <= 10 and kept_for[1] == 60


def test_adding_a_closing_rule_renders_cached_pages_anew(rules, settings, django_capture_on_commit_callbacks):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    story = published_days_ago(10)
    assert "Log in to comment." in Client().get(story.get_absolute_url()).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        ModerationRule.objects.create(name="Three days at most", kind="close_after", limit=3)
    page = Client().get(story.get_absolute_url())

    assert "X-Page-Cache" not in page
    assert "Comments are closed." in page.content.decode()


def test_a_readers_notice_on_an_open_story_is_still_theirs(rules, client):
    close_after(rules, 7)
    story = published_days_ago(1)
    client.force_login(UserFactory(verified=False))

    assert "Please verify your email address before commenting." in thread(client, story)
