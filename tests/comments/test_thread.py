"""Reading the thread: one query for the comments whatever their number, what each reader sees,
tombstones, depth, sorting, "Load more", permalinks and the page without JavaScript."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from comments import services
from comments.models import Comment
from stories.models import Story
from tests.factories import CommentFactory, StoryFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules")]

Status = Comment.Status


@pytest.fixture(autouse=True)
def no_page_cache(settings):
    settings.VISITOR_PAGE_CACHE_SECONDS = 0


def fragment(client, story, **params) -> str:
    response = client.get(f"/comments/{story.slug}/thread/", params)
    assert response.status_code == 200
    return response.content.decode()


def comment_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<li class="comment[^"]*" id="comment-(\d+)"', html)]


def make_thread(story: Story, *, top_level: int, replies_each: int) -> None:
    """Many comments at once: top-level comments each with a chain of replies."""
    authors = UserFactory.create_batch(5)
    now = timezone.now()
    tops = Comment.objects.bulk_create(
        Comment(
            story=story,
            author=authors[n % 5],
            body_source=f"top {n}",
            body_html=f"<p>top {n}</p>",
            created_at=now - timedelta(minutes=top_level - n),
            thread_reply_count=replies_each,
        )
        for n in range(top_level)
    )
    Comment.objects.bulk_create(
        Comment(
            story=story,
            author=authors[r % 5],
            parent=top,
            root=top,
            depth=1,
            body_source=f"reply {r}",
            body_html=f"<p>reply {r}</p>",
            created_at=top.created_at + timedelta(seconds=r + 1),
        )
        for top in tops
        for r in range(replies_each)
    )
    Story.objects.filter(pk=story.pk).update(comment_count=top_level * (1 + replies_each))


# --- A fixed number of queries ---------------------------------------------------------------


@pytest.mark.parametrize(("top_level", "replies_each"), [(2, 4), (100, 4)])
def test_visitor_thread_takes_two_queries_for_10_or_500_comments(
    client, story, django_assert_num_queries, top_level, replies_each
):
    make_thread(story, top_level=top_level, replies_each=replies_each)
    fragment(client, StoryFactory())  # the moderation rules are read once, then cached

    # the story; the page's comments with their authors
    with django_assert_num_queries(2):
        html = fragment(client, story)
    # then the page is kept until the story or its comments change: the story alone
    with django_assert_num_queries(1):
        again = fragment(client, story)
    assert len(comment_ids(html)) == min(top_level, 20) * (1 + replies_each)
    assert again == html


@pytest.mark.parametrize("replies", [9, 499])
def test_one_thread_of_any_size_comes_from_one_query(client, story, django_assert_num_queries, replies):
    make_thread(story, top_level=1, replies_each=replies)
    fragment(client, StoryFactory())

    with django_assert_num_queries(2):
        html = fragment(client, story)
    assert len(comment_ids(html)) == replies + 1


@pytest.mark.parametrize(("top_level", "replies_each"), [(2, 4), (100, 4)])
def test_signed_in_thread_takes_a_fixed_number_of_queries(
    client, story, reader, django_assert_num_queries, top_level, replies_each
):
    make_thread(story, top_level=top_level, replies_each=replies_each)
    client.force_login(reader)
    fragment(client, story)

    # the thread every reader shares: the story (its comments are kept from the first request); then this
    # reader's parts: the story once more, and the reader's facts they need: their standing and email, the
    # stories they have comments awaiting moderation on, commented on and recommended on (none: so their
    # actions on the comments shown need no query). Their account comes from the cache.
    with django_assert_num_queries(6):
        fragment(client, story)


# --- What each reader sees -------------------------------------------------------------------


def test_visitor_sees_published_comments_rendered(client, story):
    CommentFactory(
        story=story, body_html='<p>Good <a href="https://example.org" rel="nofollow ugc noopener">link</a></p>'
    )

    html = fragment(client, story)

    assert '<a href="https://example.org" rel="nofollow ugc noopener">link</a>' in html
    assert "Log in" not in html  # the section around the fragment says it
    assert "<form" not in html


def test_readers_own_pending_comment_shows_awaiting_moderation_to_them_only(client, story, author, other_reader):
    pending = CommentFactory(story=story, author=author, status=Status.PENDING, body_source="mine")

    client.force_login(author)
    own_view = fragment(client, story)
    client.force_login(other_reader)
    other_view = fragment(client, story)
    client.logout()
    visitor_view = fragment(client, story)

    assert comment_ids(own_view) == [pending.pk]
    assert "awaiting moderation" in own_view
    assert comment_ids(other_view) == comment_ids(visitor_view) == []
    assert "No comments yet." in visitor_view


def test_reader_sees_tombstone_when_author_deletes_a_comment_with_replies(client, story, author, other_reader):
    top = CommentFactory(story=story, author=author)
    reply = CommentFactory(parent=top, author=other_reader, body_html="<p>still here</p>")
    lonely = CommentFactory(story=story, author=author)
    services.comment_delete(comment=top, user=author)
    services.comment_delete(comment=lonely, user=author)

    html = fragment(client, story)

    assert comment_ids(html) == [top.pk, reply.pk]
    assert "[deleted]" in html
    assert "still here" in html
    assert author.username not in html


def test_removed_comment_with_replies_shows_as_removed(client, story, moderator):
    top = CommentFactory(story=story, body_html="<p>rude</p>")
    CommentFactory(parent=top)
    services.comment_remove(comment=top, moderator=moderator, reason_code="abuse")

    html = fragment(client, story)

    assert "[removed]" in html
    assert "rude" not in html


def test_edited_comments_are_marked_with_the_time(client, story, author):
    comment = services.comment_create(story=story, author=author, body="first")
    services.comment_edit(comment=comment, editor=author, body="second")

    html = fragment(client, story)

    assert re.search(r'<span class="comment-edited">edited <time datetime="[^"]+">', html)


def test_actions_offered_match_the_reader(client, story, author, other_reader):
    comment = CommentFactory(story=story, author=author)

    client.force_login(author)
    own = fragment(client, story)
    client.force_login(other_reader)
    others = fragment(client, story)

    assert f"/comments/c/{comment.pk}/edit/" in own and f"/comments/c/{comment.pk}/delete/" in own
    assert f"/comments/c/{comment.pk}/report/" not in own
    assert f"/comments/c/{comment.pk}/report/" in others and f"/comments/c/{comment.pk}/reply/" in others
    assert f"/comments/c/{comment.pk}/edit/" not in others


def test_edit_link_goes_away_after_the_window(client, story, author, settings):
    comment = CommentFactory(story=story, author=author, created_at=timezone.now() - timedelta(hours=1))
    client.force_login(author)

    assert f"/comments/c/{comment.pk}/edit/" not in fragment(client, story)


@pytest.mark.parametrize(
    ("setup", "notice"),
    [
        (lambda story, user: Story.objects.filter(pk=story.pk).update(comments_mode="closed"), "Comments are closed"),
        (lambda story, user: user.emailaddress_set.update(verified=False), "verify your email"),
    ],
)
def test_reader_who_cannot_post_gets_a_notice_instead_of_the_form(client, story, reader, setup, notice):
    setup(story, reader)
    client.force_login(reader)

    html = fragment(client, story)

    assert notice in html
    assert 'id="comment-form-top"' not in html


def test_suspended_reader_is_told_until_when(client, story, reader, moderator):
    services.commenter_suspend(user=reader, moderator=moderator, until=timezone.now() + timedelta(days=2))
    client.force_login(reader)

    assert "Your account is suspended from commenting until" in fragment(client, story)


# --- Shape: depth, sort, pages ---------------------------------------------------------------


def test_deep_replies_continue_on_their_own_page(client, story, settings):
    settings.COMMENTS_MAX_DEPTH = 3
    chain = [CommentFactory(story=story)]
    for _ in range(6):
        chain.append(CommentFactory(parent=chain[-1]))

    html = fragment(client, story)

    assert comment_ids(html) == [c.pk for c in chain[:4]]
    assert f'href="/comments/c/{chain[3].pk}/#comment-{chain[3].pk}">Continue this thread (3 more replies)' in html
    rest = client.get(f"/comments/c/{chain[3].pk}/").content.decode()
    assert comment_ids(rest) == [c.pk for c in chain[3:]]


def test_nested_lists_are_balanced(client, story):
    top = CommentFactory(story=story)
    child = CommentFactory(parent=top)
    CommentFactory(parent=child)
    CommentFactory(parent=top)
    CommentFactory(story=story)

    html = fragment(client, story)

    assert html.count("<ol") == html.count("</ol>")
    assert html.count("<li") == html.count("</li>")


def test_sorting_top_level_comments(client, story):
    now = timezone.now()
    old = CommentFactory(story=story, created_at=now - timedelta(hours=3))
    busy = CommentFactory(story=story, created_at=now - timedelta(hours=2))
    new = CommentFactory(story=story, created_at=now - timedelta(hours=1))
    CommentFactory.create_batch(2, parent=busy)

    def tops(sort):
        return [pk for pk in comment_ids(fragment(client, story, sort=sort)) if pk in (old.pk, busy.pk, new.pk)]

    assert tops("oldest") == [old.pk, busy.pk, new.pk]
    assert tops("newest") == [new.pk, busy.pk, old.pk]
    assert tops("replies") == [busy.pk, old.pk, new.pk]
    assert tops("nonsense") == [old.pk, busy.pk, new.pk]


def test_load_more_brings_the_next_top_level_comments(client, story, settings):
    settings.COMMENTS_PER_PAGE = 2
    comments = [CommentFactory(story=story, created_at=timezone.now() + timedelta(seconds=n)) for n in range(5)]

    first = fragment(client, story)
    more = client.get(f"/comments/{story.slug}/thread/", {"start": 2, "part": "more"}).content.decode()
    last = client.get(f"/comments/{story.slug}/thread/", {"start": 4, "part": "more"}).content.decode()

    assert comment_ids(first) == [c.pk for c in comments[:2]]
    assert "start=2&amp;part=more" in first and "Load more comments" in first
    assert comment_ids(more) == [c.pk for c in comments[2:4]]
    assert 'class="comment-toolbar"' not in more
    assert comment_ids(last) == [comments[4].pk]
    assert "Load more" not in last


# --- Pages without JavaScript, permalinks ----------------------------------------------------


def test_thread_page_works_without_javascript(client, story, reader):
    CommentFactory(story=story, body_html="<p>Hello from the page</p>")
    client.force_login(reader)

    html = client.get(f"/comments/{story.slug}/").content.decode()

    assert "Hello from the page" in html
    assert f'<form class="comment-form" method="post" action="/comments/{story.slug}/post/"' in html
    assert "Comments (1)" in html


def test_permalink_shows_the_comment_with_its_replies_and_a_way_up(client, story):
    top = CommentFactory(story=story)
    middle = CommentFactory(parent=top)
    leaf = CommentFactory(parent=middle)

    html = client.get(middle.get_absolute_url()).content.decode()

    assert comment_ids(html) == [middle.pk, leaf.pk]
    assert f'href="/comments/c/{top.pk}/#comment-{top.pk}">Parent comment' in html


@pytest.mark.parametrize("status", [Status.REJECTED, Status.PENDING])
def test_permalink_of_a_comment_readers_cannot_see_is_not_found(client, story, status):
    comment = CommentFactory(story=story, status=status)

    assert client.get(f"/comments/c/{comment.pk}/").status_code == 404


def test_comments_of_unpublished_stories_are_not_found(client):
    story = StoryFactory(status=Story.Status.DRAFT)
    comment = CommentFactory(story=story)

    assert client.get(f"/comments/{story.slug}/thread/").status_code == 404
    assert client.get(f"/comments/c/{comment.pk}/").status_code == 404


def test_fragment_has_no_inline_script_style_or_handlers(client, story, reader):
    CommentFactory(story=story, body_source="<script>alert(1)</script>", body_html="<p>&lt;script&gt;</p>")
    client.force_login(reader)

    html = fragment(client, story)

    assert "<script" not in html
    assert "style=" not in html
    assert not re.search(r"\son[a-z]+=", html)


def test_visitor_fragment_is_served_from_the_page_cache(client, story, settings, django_assert_num_queries):
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    CommentFactory(story=story)
    fragment(client, story)

    with django_assert_num_queries(0):
        response = client.get(f"/comments/{story.slug}/thread/")
    assert response["X-Page-Cache"] == "hit"


def test_a_kept_thread_shows_a_new_comment_at_once_in_every_order(
    client, story, author, django_capture_on_commit_callbacks
):
    CommentFactory(story=story, body_source="The first word.")
    for order in ("oldest", "newest"):
        fragment(client, story, sort=order)

    with django_capture_on_commit_callbacks(execute=True):
        services.comment_create(story=story, author=author, body="A second opinion on the ferries.")

    assert "A second opinion on the ferries." in fragment(client, story, sort="oldest")
    assert "A second opinion on the ferries." in fragment(client, story, sort="newest")
