"""Readers recommend comments: once each, never their own nor one that is not published, within a rate limit;
the count shows on the comment for everyone, the reader's own "Recommended" only in their actions; "Most
recommended" sorts the thread; the export holds recommendations and deleting the account takes them back."""

import json
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from comments import rendering, selectors, services
from comments.errors import InvalidComment, NotAllowed, RateLimited
from comments.models import Comment, Commenter, Recommendation
from tests.comments.utils import at_once, htmx, viewer
from tests.conftest import PASSWORD, require
from tests.factories import CommentFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules")]

Status = Comment.Status


@pytest.fixture(autouse=True)
def no_page_cache(settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 0


@pytest.fixture
def comment(story, author):
    return CommentFactory(story=story, author=author, body_source="Shore power first.")


def recommend_url(comment: Comment) -> str:
    return f"/comments/c/{comment.pk}/recommend/"


def count_of(comment: Comment) -> int:
    return Comment.objects.values_list("recommendation_count", flat=True).get(pk=comment.pk)


def thread_rows(user, story, sort: str = selectors.Sort.OLDEST) -> list[selectors.Row]:
    return selectors.thread_page(story=story, viewer=viewer(user, story), sort=sort, start=0).rows


def actions_block(card_html: str) -> str:
    found = re.search(r'<div class="comment-actions">.*?</div>\n?', card_html, re.DOTALL)
    return found.group(0) if found else ""


# --- The rules -------------------------------------------------------------------------------


def test_reader_recommends_a_comment_once(comment, other_reader):
    services.comment_recommend(comment=comment, reader=other_reader)
    again = services.comment_recommend(comment=comment, reader=other_reader)

    assert again.recommendation_count == count_of(comment) == 1
    assert Recommendation.objects.filter(comment=comment, reader=other_reader).count() == 1


def test_reader_takes_their_recommendation_back(comment, other_reader, reader):
    services.comment_recommend(comment=comment, reader=other_reader)
    services.comment_recommend(comment=comment, reader=reader)

    services.comment_unrecommend(comment=comment, reader=other_reader)
    services.comment_unrecommend(comment=comment, reader=other_reader)

    assert count_of(comment) == 1
    assert list(Recommendation.objects.values_list("reader", flat=True)) == [reader.pk]


def test_taking_back_a_recommendation_never_given_changes_nothing(comment, other_reader):
    services.comment_unrecommend(comment=comment, reader=other_reader)

    assert count_of(comment) == 0


def test_reader_cannot_recommend_their_own_comment(client, comment, author):
    with pytest.raises(NotAllowed, match="your own comment"):
        services.comment_recommend(comment=comment, reader=author)

    client.force_login(author)
    response = client.post(recommend_url(comment), {"recommend": "1"})

    assert response.status_code == 403
    assert "You cannot recommend your own comment." in response.content.decode()
    assert count_of(comment) == 0


@pytest.mark.parametrize("status", [Status.PENDING, Status.REJECTED, Status.REMOVED])
def test_held_rejected_or_removed_comments_cannot_be_recommended(story, author, other_reader, status):
    comment = CommentFactory(story=story, author=author, status=status)

    with pytest.raises(InvalidComment, match="Only published comments"):
        services.comment_recommend(comment=comment, reader=other_reader)

    assert count_of(comment) == 0
    assert not Recommendation.objects.exists()


def test_a_comment_taken_down_keeps_its_count_and_readers_may_still_take_theirs_back(comment, other_reader, moderator):
    services.comment_recommend(comment=comment, reader=other_reader)
    services.comment_remove(comment=comment, moderator=moderator, reason_code="abuse")

    services.comment_unrecommend(comment=comment, reader=other_reader)

    assert count_of(comment) == 0


@pytest.mark.parametrize(
    ("standing", "message"),
    [
        ({"is_banned": True}, "can no longer comment"),
        ({"suspended_until": timezone.now() + timedelta(days=2)}, "suspended"),
    ],
)
def test_banned_or_suspended_readers_cannot_recommend(comment, other_reader, standing, message):
    Commenter.objects.filter(user=other_reader).update(**standing)

    with pytest.raises(NotAllowed, match=message):
        services.comment_recommend(comment=comment, reader=other_reader)

    assert count_of(comment) == 0


def test_readers_without_a_verified_email_cannot_recommend(comment):
    unverified = UserFactory(username="nova", verified=False)

    with pytest.raises(NotAllowed, match="verify your email address before recommending comments"):
        services.comment_recommend(comment=comment, reader=unverified)


def test_recommending_is_rate_limited_with_the_wait_in_retry_after(client, settings, story, other_reader):
    settings.COMMENTS_RECOMMENDATIONS_PER_HOUR = 3
    comments = CommentFactory.create_batch(4, story=story)
    client.force_login(other_reader)

    statuses = [client.post(recommend_url(c), {"recommend": "1"}).status_code for c in comments[:3]]
    refused = client.post(recommend_url(comments[3]), {"recommend": "1"}, **htmx())

    assert statuses == [302, 302, 302]
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert "3 times an hour" in refused.content.decode()
    assert refused["HX-Retarget"] == f"#comment-{comments[3].pk}-slot"
    assert count_of(comments[3]) == 0
    with pytest.raises(RateLimited):  # taking one back counts too
        services.comment_unrecommend(comment=comments[0], reader=other_reader)


def test_visitors_cannot_recommend(client, comment):
    response = client.post(recommend_url(comment), {"recommend": "1"})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert count_of(comment) == 0


def test_recommending_needs_a_post(client, comment, other_reader):
    client.force_login(other_reader)

    assert client.get(recommend_url(comment)).status_code == 405


# --- Without JavaScript and with htmx ------------------------------------------------------------


def test_without_javascript_recommending_comes_back_to_the_page_at_the_comment(client, story, comment, other_reader):
    client.force_login(other_reader)
    page = f"http://testserver{story.get_absolute_url()}"

    response = client.post(recommend_url(comment), {"recommend": "1"}, HTTP_REFERER=page)

    assert response.status_code == 302
    assert response["Location"] == f"{page}#comment-{comment.pk}"
    assert count_of(comment) == 1


def test_without_a_page_to_return_to_it_comes_back_to_the_comment(client, comment, other_reader):
    client.force_login(other_reader)

    response = client.post(recommend_url(comment), {"recommend": "1"}, HTTP_REFERER="https://elsewhere.example/")

    assert response["Location"] == comment.get_absolute_url()


def test_with_htmx_the_answer_is_the_card_with_the_new_count_and_state(client, comment, other_reader):
    client.force_login(other_reader)

    recommended = client.post(recommend_url(comment), {"recommend": "1"}, **htmx()).content.decode()
    taken_back = client.post(recommend_url(comment), {"recommend": "0"}, **htmx()).content.decode()

    assert recommended.startswith(f'<article class="comment-card" id="comment-{comment.pk}-card">')
    assert "1 recommendation<" in recommended
    assert 'aria-pressed="true">Recommended</button>' in recommended
    assert 'name="recommend" value="0"' in recommended
    assert "You recommend this comment." in recommended
    assert "recommendation" not in taken_back.split("</header>")[0]
    assert 'aria-pressed="false">Recommend</button>' in taken_back


# --- What the thread shows -------------------------------------------------------------------


def test_the_count_shows_on_the_comment_for_visitors_without_a_button(client, story, comment, other_reader, reader):
    services.comment_recommend(comment=comment, reader=other_reader)
    services.comment_recommend(comment=comment, reader=reader)

    html = client.get(f"/comments/{story.slug}/thread/").content.decode()

    assert '<span class="comment-recommendations">2 recommendations</span>' in html
    assert "Recommend</button>" not in html


def test_each_reader_sees_their_own_recommended_state(story, comment, other_reader, reader, author):
    services.comment_recommend(comment=comment, reader=other_reader)

    (mine,) = thread_rows(other_reader, story)
    (someone_elses,) = thread_rows(reader, story)
    (authors,) = thread_rows(author, story)
    (visitors,) = thread_rows(None, story)

    assert (mine.can_recommend, mine.recommended) == (True, True)
    assert (someone_elses.can_recommend, someone_elses.recommended) == (True, False)
    assert (authors.can_recommend, visitors.can_recommend) == (False, False)
    assert 'aria-pressed="true">Recommended' in rendering.card(mine)
    assert 'aria-pressed="false">Recommend' in rendering.card(someone_elses)


def test_everything_outside_the_actions_block_is_the_same_for_every_reader(story, comment, other_reader, reader):
    """What a shared cached page may hold: the visitor's card, whose actions place each reader's own actions
    (their button and its state) fill."""
    services.comment_recommend(comment=comment, reader=other_reader)
    shared = str(rendering.card(thread_rows(None, story)[0]))
    place = re.search(r"<!--nr:p comment_actions [^>]*--><!--/nr:p-->", shared)
    assert place is not None and "1 recommendation" in shared

    for user, button in ((other_reader, "Recommended"), (reader, "Recommend")):
        own = str(rendering.card(thread_rows(user, story)[0]))
        assert f">{button}</button>" in actions_block(own)
        assert own == shared.replace(place.group(0), actions_block(own))


def test_a_signed_in_reader_sees_their_recommended_state_on_the_story_page(client, story, comment, other_reader):
    services.comment_recommend(comment=comment, reader=other_reader)
    client.force_login(other_reader)

    html = client.get(story.get_absolute_url()).content.decode()

    assert 'aria-pressed="true">Recommended</button>' in html
    assert 'name="csrfmiddlewaretoken"' in actions_block(html)


def test_readers_in_poor_standing_get_no_button(story, comment, other_reader):
    Commenter.objects.filter(user=other_reader).update(is_banned=True)

    (row,) = thread_rows(other_reader, story)

    assert not row.can_recommend


def test_the_readers_recommended_state_costs_one_query_for_the_whole_page(
    story, other_reader, django_assert_num_queries
):
    comments = CommentFactory.create_batch(30, story=story)
    for comment in comments[::3]:
        services.comment_recommend(comment=comment, reader=other_reader)
    reader_viewer = viewer(other_reader, story)

    # the page's comments; the reader's recommendations among them
    with django_assert_num_queries(2):
        page = selectors.thread_page(story=story, viewer=reader_viewer, sort=selectors.Sort.OLDEST, start=0)

    assert [row.recommended for row in page.rows] == [n % 3 == 0 for n in range(20)]


def test_most_recommended_sorts_top_level_comments_by_their_count(client, story):
    quiet, loved, liked = CommentFactory.create_batch(3, story=story)
    for n in range(3):
        services.comment_recommend(comment=loved, reader=UserFactory(username=f"fan{n}"))
    services.comment_recommend(comment=liked, reader=UserFactory(username="fan9"))

    html = client.get(f"/comments/{story.slug}/thread/", {"sort": "recommended"}).content.decode()

    shown = [int(pk) for pk in re.findall(r'<li class="comment[^"]*" id="comment-(\d+)"', html)]
    assert shown == [loved.pk, liked.pk, quiet.pk]
    assert '<strong aria-current="true">Most recommended</strong>' in html


def test_a_recommendation_invalidates_the_story_pages_visitors_get(
    settings, redis_client, story, comment, other_reader, django_capture_on_commit_callbacks
):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    visitor = Client(REMOTE_ADDR="192.0.2.7")
    visitor.get(story.get_absolute_url())
    assert visitor.get(story.get_absolute_url())["X-Page-Cache"] == "hit"

    with django_capture_on_commit_callbacks(execute=True):
        services.comment_recommend(comment=comment, reader=other_reader)

    page = visitor.get(story.get_absolute_url())
    assert "X-Page-Cache" not in page
    assert "1 recommendation" in page.content.decode()


def test_a_recommendation_leaves_other_stories_pages_cached(
    settings, redis_client, comment, other_reader, django_capture_on_commit_callbacks
):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    elsewhere = StoryFactory()
    visitor = Client(REMOTE_ADDR="192.0.2.8")
    visitor.get(elsewhere.get_absolute_url())

    with django_capture_on_commit_callbacks(execute=True):
        services.comment_recommend(comment=comment, reader=other_reader)

    assert visitor.get(elsewhere.get_absolute_url())["X-Page-Cache"] == "hit"


# --- The reader's data -----------------------------------------------------------------------


def test_the_export_includes_the_readers_recommendations(client, story, comment, other_reader):
    services.comment_recommend(comment=comment, reader=other_reader)
    services.comment_recommend(comment=CommentFactory(story=story), reader=UserFactory(username="someone"))
    client.force_login(other_reader)

    data = json.loads(client.get("/comments/my/export.json").content)

    assert [(r["comment"], r["story"], r["url"]) for r in data["recommendations"]] == [
        (comment.pk, story.title, comment.get_absolute_url())
    ]


def test_deleting_the_account_deletes_their_recommendations_and_lowers_the_counts(client, comment, other_reader):
    services.comment_recommend(comment=comment, reader=other_reader)
    services.comment_recommend(comment=comment, reader=UserFactory(username="stays"))
    client.force_login(other_reader)

    response = client.post("/comments/my/delete-account/", {"confirmation": PASSWORD})

    assert response.status_code == 302
    assert count_of(comment) == 1
    assert list(Recommendation.objects.values_list("reader__username", flat=True)) == ["stays"]


def test_accounts_deleted_in_the_admin_also_take_their_recommendations_back(comment, other_reader):
    services.comment_recommend(comment=comment, reader=other_reader)

    other_reader.delete()

    assert count_of(comment) == 0
    assert not Recommendation.objects.exists()


# --- Many readers at once, on PostgreSQL -------------------------------------------------------


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def poster(client: Client, comment: Comment, value: str) -> Callable[[], int]:
    return lambda: client.post(recommend_url(comment), {"recommend": value}, **htmx()).status_code


@pytest.fixture
def on_postgresql(transactional_db, rules):
    require(connection.vendor == "postgresql", "concurrency is tested on PostgreSQL (set DATABASE_URL)")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("on_postgresql")
def test_twenty_readers_recommending_at_once_count_twenty():
    comment = CommentFactory()
    clients = [signed_in(user) for user in UserFactory.create_batch(20)]

    statuses = at_once([poster(client, comment, "1") for client in clients])

    assert statuses == [200] * 20
    assert count_of(comment) == Recommendation.objects.filter(comment=comment).count() == 20


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("on_postgresql")
def test_readers_clicking_twice_at_once_count_once_each():
    comment = CommentFactory()
    clients = [signed_in(user) for user in UserFactory.create_batch(10)]

    statuses = at_once([poster(client, comment, "1") for client in clients for _ in range(2)])

    assert statuses == [200] * 20
    assert count_of(comment) == Recommendation.objects.filter(comment=comment).count() == 10


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("on_postgresql")
def test_recommending_and_taking_back_at_once_keeps_the_count_equal_to_the_recommendations():
    comment = CommentFactory()
    readers = UserFactory.create_batch(16)
    for user in readers[:8]:
        services.comment_recommend(comment=comment, reader=user)
    clients = [signed_in(user) for user in readers]

    # The first eight take theirs back while the other eight recommend, each twice.
    jobs = [poster(client, comment, "0" if n < 8 else "1") for n, client in enumerate(clients) for _ in range(2)]
    statuses = at_once(jobs)

    assert statuses == [200] * 32
    assert set(Recommendation.objects.values_list("reader", flat=True)) == {user.pk for user in readers[8:]}
    assert count_of(comment) == 8
