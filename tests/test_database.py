"""The hottest queries compiled once per process: the same rows as the ORM's, for every story and reader."""

import functools

import pytest
from django.db import connection
from django.db.models.expressions import RawSQL

from comments import selectors
from comments.models import Comment
from newsreader import database
from stories.models import Story
from tests.comments.test_thread import make_thread
from tests.conftest import require
from tests.factories import CommentFactory, StoryFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def on_postgresql():
    require(connection.vendor == "postgresql", "queries are compiled once on PostgreSQL only (set DATABASE_URL)")


def orm_rows(**values) -> list[tuple]:
    return sorted(selectors._thread_page_comments(sort="newest", start=0, per_page=3, **values))


def compiled_rows(shape, **values) -> list[tuple]:
    page = functools.partial(selectors._thread_page_comments, sort="newest", start=0, per_page=3)
    return sorted(database.rows_compiled_once(shape, page, **values))


def test_a_thread_compiled_once_gives_each_story_and_reader_their_own_rows():
    harbour, river = StoryFactory(), StoryFactory()
    make_thread(harbour, top_level=5, replies_each=2)
    make_thread(river, top_level=2, replies_each=3)
    reader = UserFactory()
    pending = CommentFactory(story=harbour, author=reader, status=Comment.Status.PENDING)

    for story in (harbour, river, harbour):
        assert compiled_rows("visitor", story_id=story.pk) == orm_rows(story_id=story.pk)
        mine = compiled_rows("reader", story_id=story.pk, viewer_id=reader.pk)
        assert mine == orm_rows(story_id=story.pk, viewer_id=reader.pk)

    assert pending.pk in {row[0] for row in compiled_rows("reader", story_id=harbour.pk, viewer_id=reader.pk)}
    assert pending.pk not in {row[0] for row in compiled_rows("visitor", story_id=harbour.pk)}
    assert database._compiled["visitor"] is not None and database._compiled["reader"] is not None


def test_a_query_that_writes_a_value_into_its_sql_is_never_kept():
    first, second = CommentFactory(), CommentFactory()

    def above(floor: int):
        # The number written into the SQL, as a LIMIT would be.
        return Comment.objects.filter(pk__gt=RawSQL(str(int(floor)), ())).order_by("pk").values_list("pk")  # noqa: S611

    assert database.rows_compiled_once("inline", above, floor=first.pk - 1) == [(first.pk,), (second.pk,)]
    assert database.rows_compiled_once("inline", above, floor=first.pk) == [(second.pk,)]
    assert database._compiled["inline"] is None


def test_a_query_compiled_once_with_text_finds_each_value_its_own_rows():
    harbour, river = StoryFactory(slug="harbour-ferries"), StoryFactory(slug="river-ferries")

    def by_slug(slug: str):
        return Story.objects.filter(slug=slug).values_list("pk")

    for story in (harbour, river, harbour):
        assert database.rows_compiled_once("by_slug", by_slug, slug=story.slug) == [(story.pk,)]
    assert database.rows_compiled_once("by_slug", by_slug, slug="no-such-story") == []
    assert database._compiled["by_slug"] is not None


def test_a_query_compiled_once_can_also_be_planned_once():
    story = StoryFactory()

    def by_id(story_id: int):
        return Story.objects.filter(pk=story_id).values_list("slug")

    assert database.rows_compiled_once("planned", by_id, planned=True, story_id=story.pk) == [(story.slug,)]
    assert database.rows_compiled_once("planned", by_id, planned=True, story_id=story.pk + 1000) == []
