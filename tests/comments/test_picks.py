"""Editors' picks and badges: moderators make a published comment a pick from the admin or from the page, each
change logged; picks carry a badge and have a tab of their own; moderators' and staff's comments carry
theirs, from the thread's one query."""

import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.test import Client

from comments import rendering, selectors, services
from comments.errors import ModerationError, NotAllowed
from comments.models import Comment, ModerationLog
from tests.comments.utils import htmx, viewer
from tests.factories import CommentFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules")]

Status = Comment.Status
Action = ModerationLog.Action
PICK_BADGE = '<span class="comment-badge comment-badge-pick">Editors\' pick</span>'


@pytest.fixture(autouse=True)
def no_page_cache(settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 0


@pytest.fixture
def comment(story, author):
    return CommentFactory(story=story, author=author, body_source="The timetable is in the port's report.")


def pick_url(comment: Comment) -> str:
    return f"/comments/c/{comment.pk}/pick/"


def picked(comment: Comment) -> bool:
    return Comment.objects.values_list("is_picked", flat=True).get(pk=comment.pk)


def thread(client, story, **params) -> str:
    response = client.get(f"/comments/{story.slug}/thread/", params)
    assert response.status_code == 200
    return response.content.decode()


def shown_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<li class="comment[^"]*" id="comment-(\d+)"', html)]


# --- Picking ---------------------------------------------------------------------------------


def test_moderator_picks_a_comment_and_the_log_says_who(comment, moderator, author):
    services.comment_pick(comment=comment, moderator=moderator, picked=True)

    comment.refresh_from_db()
    assert comment.is_picked and comment.picked_at is not None
    entry = ModerationLog.objects.get(action=Action.PICKED)
    assert (entry.comment, entry.moderator, entry.subject, entry.story_id) == (
        comment,
        moderator,
        author,
        comment.story_id,
    )


def test_moderator_unpicks_a_comment_and_that_is_logged_too(comment, moderator):
    services.comment_pick(comment=comment, moderator=moderator, picked=True)

    services.comment_pick(comment=comment, moderator=moderator, picked=False)

    comment.refresh_from_db()
    assert (comment.is_picked, comment.picked_at) == (False, None)
    assert list(ModerationLog.objects.filter(comment=comment).values_list("action", flat=True)) == [
        Action.UNPICKED,
        Action.PICKED,
    ]


def test_picking_a_pick_again_changes_and_logs_nothing(comment, moderator):
    services.comment_pick(comment=comment, moderator=moderator, picked=True)
    first = Comment.objects.get(pk=comment.pk).picked_at

    services.comment_pick(comment=comment, moderator=moderator, picked=True)

    assert Comment.objects.get(pk=comment.pk).picked_at == first
    assert ModerationLog.objects.filter(action=Action.PICKED).count() == 1


def test_readers_and_staff_without_the_permission_cannot_pick(comment, other_reader):
    plain_staff = UserFactory(username="clerk", is_staff=True)

    for user in (other_reader, plain_staff):
        with pytest.raises(NotAllowed, match="Only moderators"):
            services.comment_pick(comment=comment, moderator=user, picked=True)

    assert not picked(comment)
    assert not ModerationLog.objects.filter(action=Action.PICKED).exists()


@pytest.mark.parametrize("status", [Status.PENDING, Status.REJECTED, Status.REMOVED, Status.DELETED])
def test_only_a_published_comment_can_be_picked(story, moderator, status):
    comment = CommentFactory(
        story=story, status=status, **({"body_source": "", "body_html": ""} if status == "deleted" else {})
    )

    with pytest.raises(ModerationError, match="Only a published comment"):
        services.comment_pick(comment=comment, moderator=moderator, picked=True)

    assert not picked(comment)


# --- From the page ---------------------------------------------------------------------------


def test_moderator_picks_from_the_page_without_javascript(client, story, comment, moderator):
    client.force_login(moderator)
    page = f"http://testserver{story.get_absolute_url()}"

    response = client.post(pick_url(comment), {"picked": "1"}, HTTP_REFERER=page)

    assert response.status_code == 302
    assert response["Location"] == f"{page}#comment-{comment.pk}"
    assert picked(comment)
    client.logout()
    assert PICK_BADGE in thread(client, story)


def test_moderator_picks_with_htmx_and_gets_the_card_back(client, comment, moderator):
    client.force_login(moderator)

    answer = client.post(pick_url(comment), {"picked": "1"}, **htmx()).content.decode()
    undone = client.post(pick_url(comment), {"picked": "0"}, **htmx()).content.decode()

    assert answer.startswith(f'<article class="comment-card" id="comment-{comment.pk}-card">')
    assert PICK_BADGE in answer
    assert ">Remove from editors' picks</button>" in answer
    assert "The comment is an editors&#x27; pick." in answer
    assert PICK_BADGE not in undone
    assert ">Make editors' pick</button>" in undone


def test_a_reader_posting_to_pick_is_refused(client, comment, other_reader):
    client.force_login(other_reader)

    response = client.post(pick_url(comment), {"picked": "1"}, **htmx())

    assert response.status_code == 403
    assert "Only moderators can choose editors" in response.content.decode()
    assert response["HX-Retarget"] == f"#comment-{comment.pk}-slot"
    assert not picked(comment)


def test_picking_a_held_comment_from_the_page_is_refused_with_the_reason(client, story, moderator):
    held = CommentFactory(story=story, status=Status.PENDING)
    client.force_login(moderator)

    response = client.post(pick_url(held), {"picked": "1"})

    assert response.status_code == 409
    assert "Only a published comment can be an editors" in response.content.decode()


def test_only_moderators_get_the_pick_button(story, comment, moderator, other_reader):
    rows = {
        name: selectors.thread_page(story=story, viewer=viewer(user, story), sort="oldest", start=0).rows[0]
        for name, user in (("moderator", moderator), ("reader", other_reader), ("visitor", None))
    }

    assert {name: row.can_pick for name, row in rows.items()} == {
        "moderator": True,
        "reader": False,
        "visitor": False,
    }
    assert ">Make editors' pick</button>" in rendering.card(rows["moderator"])
    assert "pick</button>" not in rendering.card(rows["reader"])


def test_superusers_may_pick_and_inactive_moderators_may_not(story, comment, moderator):
    boss = UserFactory(username="boss", is_staff=True, is_superuser=True)
    moderator.is_active = False
    moderator.save(update_fields=["is_active"])

    assert viewer(boss, story).can_moderate
    assert not viewer(moderator, story).can_moderate
    with pytest.raises(NotAllowed):
        services.comment_pick(comment=comment, moderator=moderator, picked=True)


# --- Where picks show ------------------------------------------------------------------------


def test_a_pick_carries_its_badge_in_the_thread(client, story, comment, moderator):
    ordinary = CommentFactory(story=story, body_source="Nothing special.")
    services.comment_pick(comment=comment, moderator=moderator, picked=True)

    html = thread(client, story)

    assert html.count(PICK_BADGE) == 1
    assert f'<li class="comment comment-picked" id="comment-{comment.pk}">' in html
    assert f'<li class="comment" id="comment-{ordinary.pk}">' in html


def test_the_picks_tab_lists_only_published_picks_latest_pick_first_replies_included(client, story, comment, moderator):
    reply = CommentFactory(parent=comment, body_source="A reply worth reading.")
    unpicked = CommentFactory(story=story, body_source="Not chosen.")
    taken_down = CommentFactory(story=story, body_source="Chosen, then removed.")
    for chosen in (comment, taken_down, reply):
        services.comment_pick(comment=chosen, moderator=moderator, picked=True)
    services.comment_remove(comment=taken_down, moderator=moderator, reason_code="abuse")

    html = thread(client, story, sort="picks")

    assert shown_ids(html) == [reply.pk, comment.pk]
    assert unpicked.body_source not in html
    assert '<strong aria-current="true">Editors&#x27; picks</strong>' in html
    # Each pick stands on its own: the reply is not shown again under its parent.
    assert html.count("A reply worth reading.") == 1


def test_the_picks_tab_pages_with_load_more(client, story, moderator, settings):
    settings.COMMENTS_PER_PAGE = 2
    chosen = CommentFactory.create_batch(3, story=story)
    for comment in chosen:
        services.comment_pick(comment=comment, moderator=moderator, picked=True)

    first = thread(client, story, sort="picks")
    rest = thread(client, story, sort="picks", start=2, part="more")

    assert shown_ids(first) == [chosen[2].pk, chosen[1].pk]
    assert "start=2" in first
    assert shown_ids(rest) == [chosen[0].pk]


def test_a_story_without_picks_says_so_in_the_picks_tab(client, story, comment):
    html = thread(client, story, sort="picks")

    assert shown_ids(html) == []
    assert "No editors' picks yet." in html


def test_picking_invalidates_the_story_pages_visitors_get(
    settings, redis_client, story, comment, moderator, django_capture_on_commit_callbacks
):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    visitor = Client(REMOTE_ADDR="192.0.2.9")
    visitor.get(story.get_absolute_url())
    assert visitor.get(story.get_absolute_url())["X-Page-Cache"] == "hit"

    with django_capture_on_commit_callbacks(execute=True):
        services.comment_pick(comment=comment, moderator=moderator, picked=True)

    page = visitor.get(story.get_absolute_url())
    assert "X-Page-Cache" not in page
    assert PICK_BADGE in page.content.decode()


# --- Badges ----------------------------------------------------------------------------------


def test_moderators_and_staff_comments_carry_a_badge(client, story, moderator):
    staff = UserFactory(username="desk", is_staff=True)
    in_group_not_staff = UserFactory(username="helper")
    in_group_not_staff.groups.add(Group.objects.get(name="Moderators"))
    by = {
        user.username: CommentFactory(story=story, author=user)
        for user in (moderator, staff, in_group_not_staff, UserFactory(username="plain"))
    }

    html = thread(client, story)

    def badges_of(comment):
        card = html[html.index(f'id="comment-{comment.pk}-card"') :]
        return re.findall(r'comment-badge-(\w+)">', card[: card.index("</header>")])

    assert badges_of(by["mod"]) == ["moderator"]
    assert badges_of(by["desk"]) == ["staff"]
    assert badges_of(by["helper"]) == badges_of(by["plain"]) == []
    assert '<span class="comment-badge comment-badge-moderator">Moderator</span>' in html
    assert '<span class="comment-badge comment-badge-staff">Staff</span>' in html


def test_badges_cost_no_query_per_comment(client, story, moderator, django_assert_num_queries):
    staff = UserFactory(username="desk", is_staff=True)
    for n in range(30):
        CommentFactory(story=story, author=(moderator, staff, None)[n % 3] or UserFactory())
    thread(client, StoryFactory())  # the moderation rules are read once, then cached

    # the story; the page's comments with their authors and badges
    with django_assert_num_queries(2):
        html = thread(client, story)
    assert html.count("comment-badge-moderator") == html.count("comment-badge-staff") == 7


def test_a_moderators_comment_just_posted_carries_the_badge(client, story, moderator):
    client.force_login(moderator)

    answer = client.post(f"/comments/{story.slug}/post/", {"body": "Please keep it civil."}, **htmx())

    assert '<span class="comment-badge comment-badge-moderator">Moderator</span>' in answer.content.decode()


# --- The admin -------------------------------------------------------------------------------


def admin_action(client, action: str, comments: list[Comment]):
    data = {"action": action, ACTION_CHECKBOX_NAME: [c.pk for c in comments], "index": 0}
    asked = client.post("/admin/comments/comment/?queue=all", data)
    assert "Are you sure?" in asked.content.decode()
    data.pop("index")
    return client.post("/admin/comments/comment/?queue=all", {**data, "confirmed": "yes"}, follow=True)


def test_moderator_picks_and_unpicks_in_the_admin_with_confirmation(client, story, moderator):
    chosen = CommentFactory.create_batch(2, story=story)
    held = CommentFactory(story=story, status=Status.PENDING)
    client.force_login(moderator)

    done = admin_action(client, "pick", [*chosen, held]).content.decode()

    assert "2 comments made editors&#x27; picks." in done
    assert f"#{held.pk}: Only a published comment can be an editors" in done
    assert [picked(c) for c in (*chosen, held)] == [True, True, False]
    listed = client.get("/admin/comments/comment/", {"queue": "picks"}).content.decode()
    assert all(f"/admin/comments/comment/{c.pk}/change/" in listed for c in chosen)
    assert f"/admin/comments/comment/{held.pk}/change/" not in listed

    admin_action(client, "unpick", chosen[:1])

    assert [picked(c) for c in chosen] == [False, True]
    assert ModerationLog.objects.filter(action=Action.UNPICKED, moderator=moderator).count() == 1


def test_the_comment_page_in_the_admin_shows_its_recommendations_and_pick(client, story, comment, moderator):
    services.comment_pick(comment=comment, moderator=moderator, picked=True)
    client.force_login(moderator)

    html = client.get(f"/admin/comments/comment/{comment.pk}/change/").content.decode()

    assert "Readers and editors" in html
    assert "Make selected comments editors" in html


def test_a_pick_on_another_story_is_not_in_this_storys_tab(client, story, moderator):
    elsewhere = CommentFactory(story=StoryFactory())
    services.comment_pick(comment=elsewhere, moderator=moderator, picked=True)

    assert shown_ids(thread(client, story, sort="picks")) == []
