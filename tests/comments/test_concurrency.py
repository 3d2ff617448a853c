"""Many readers posting at once on PostgreSQL: nothing lost, no duplicates, counts and limits exact.

Real threads, each with its own database connection, against the real database.
"""

import threading
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from comments import services
from comments.models import Comment
from stories.models import Story
from tests.comments.utils import at_once
from tests.conftest import require
from tests.factories import CommentFactory, StoryFactory, UserFactory
from tests.stories.test_page_copies import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def on_postgresql(rules):
    require(connection.vendor == "postgresql", "concurrency is tested on PostgreSQL (set DATABASE_URL)")


def signed_in_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def poster(client: Client, story: Story, body: str, key: uuid.UUID, parent: Comment | None = None):
    url = f"/comments/c/{parent.pk}/reply/" if parent else f"/comments/{story.slug}/post/"
    return lambda: client.post(url, {"body": body, "idempotency_key": str(key)}).status_code


def test_twenty_readers_posting_at_once_lose_nothing():
    story = StoryFactory()
    clients = [signed_in_client(user) for user in UserFactory.create_batch(20)]

    statuses = at_once([poster(client, story, f"Reader {n} speaks", uuid.uuid4()) for n, client in enumerate(clients)])

    assert statuses == [302] * 20
    assert sorted(Comment.objects.values_list("body_source", flat=True)) == sorted(
        f"Reader {n} speaks" for n in range(20)
    )
    story.refresh_from_db()
    assert story.comment_count == 20


def test_twenty_readers_double_submitting_create_no_duplicates():
    story = StoryFactory()
    clients = [signed_in_client(user) for user in UserFactory.create_batch(20)]
    jobs = []
    for n, client in enumerate(clients):
        key = uuid.uuid4()
        jobs += [poster(client, story, f"Once {n}", key), poster(client, story, f"Once {n}", key)]

    statuses = at_once(jobs)

    assert statuses == [302] * 40
    assert Comment.objects.count() == 20
    story.refresh_from_db()
    assert story.comment_count == 20


def test_replies_arriving_at_once_keep_the_thread_count_exact():
    root = CommentFactory()
    clients = [signed_in_client(user) for user in UserFactory.create_batch(20)]

    statuses = at_once(
        [poster(client, root.story, f"Reply {n}", uuid.uuid4(), root) for n, client in enumerate(clients)]
    )

    assert statuses == [302] * 20
    root.refresh_from_db()
    assert root.thread_reply_count == 20
    assert Story.objects.get(pk=root.story_id).comment_count == 21


def test_a_reply_waiting_for_its_threads_lock_holds_none_on_the_story():
    """A reply and a moderator's approval both count a comment in its thread and its story. Each locks the
    thread's first comment before the story's row, or two of them could each hold what the other waits for."""
    root = CommentFactory()
    reader = signed_in_client(UserFactory())
    holding, release = threading.Event(), threading.Event()

    def hold_the_thread() -> None:
        with transaction.atomic():
            Comment.objects.select_for_update().get(pk=root.pk)
            holding.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=lambda: at_once([hold_the_thread]))
    holder.start()
    assert holding.wait(timeout=30)
    replying = threading.Thread(target=lambda: at_once([poster(reader, root.story, "Waiting", uuid.uuid4(), root)]))
    replying.start()
    try:
        wait_until(lambda: waiting_for_a_lock() == 1, what="the reply never waited for the thread's lock")
        with transaction.atomic():
            Story.objects.select_for_update(nowait=True).get(pk=root.story_id)
    finally:
        release.set()
        holder.join(timeout=30)
        replying.join(timeout=30)

    root.refresh_from_db()
    assert root.thread_reply_count == 1
    assert Story.objects.get(pk=root.story_id).comment_count == 2


def waiting_for_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def test_one_reader_racing_past_a_rate_limit_gets_one_comment_in(rules):
    rules("rate_limit", limit=1, window_seconds=15)
    story = StoryFactory()
    client = signed_in_client(UserFactory())

    statuses = at_once([poster(client, story, f"Burst {n}", uuid.uuid4()) for n in range(10)])

    assert sorted(statuses) == [302] + [429] * 9
    assert Comment.objects.count() == 1


def test_the_same_text_sent_twice_at_once_with_fresh_forms_is_posted_once(rules):
    rules("duplicate", window_seconds=600)
    story = StoryFactory()
    client = signed_in_client(UserFactory())

    statuses = at_once([poster(client, story, "Same words", uuid.uuid4()) for _ in range(5)])

    assert sorted(statuses) == [302] + [409] * 4
    assert Comment.objects.count() == 1


def test_a_post_in_progress_does_not_hold_up_its_readers_account():
    """Posting locks the reader's commenter row, not their account row: a sign-in (which writes
    last_login) goes ahead while one of their posts is still in its transaction."""
    story = StoryFactory()
    user = UserFactory()
    locked, release = threading.Event(), threading.Event()

    def pause_after_the_lock(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "FOR UPDATE" in sql:
            locked.set()
            release.wait(timeout=30)
        return result

    def post() -> object:
        with connection.execute_wrapper(pause_after_the_lock):
            return services.comment_create(story=story, author=user, body="Still in its transaction")

    posting = threading.Thread(target=lambda: at_once([post]))
    posting.start()
    try:
        assert locked.wait(timeout=30)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            updated = get_user_model().objects.filter(pk=user.pk).update(last_login=timezone.now())
    finally:
        release.set()
        posting.join(timeout=60)

    assert updated == 1
    assert Comment.objects.get().body_source == "Still in its transaction"
