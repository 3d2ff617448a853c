"""A feed's import costs the same number of queries whether it holds ten entries or a hundred."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stories.importing import parse, service
from stories.models import Story, StoryRevision
from tests.conftest import require
from tests.factories import SourceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def on_postgresql():
    # Elsewhere the ORM writes the stories in batches as large as the database takes: more for more entries.
    require(connection.vendor == "postgresql", "one statement per batch of stories is PostgreSQL's (set DATABASE_URL)")


def feed(entries: int, *, edition: str = "first") -> list[parse.ParsedEntry]:
    body = "".join(
        f"<item><title>Quay story {n}, {edition} edition</title><link>https://quay.example.org/{n}</link>"
        f"<guid>quay-{n}</guid><category>Quay</category><category>Tides</category>"
        f"<description><![CDATA[<p>The {edition} word on berth {n} and its cranes.</p>]]></description></item>"
        for n in range(entries)
    )
    content = (
        f'<rss version="2.0"><channel><title>Quay</title><link>https://quay.example.org/</link>{body}</channel></rss>'
    )
    return parse.parse_feed(content=content.encode(), url="https://quay.example.org/feed.xml").entries


def queries_to_store(source, entries) -> int:
    with CaptureQueriesContext(connection) as queries:
        service.store_entries(source=source, entries=entries)
    return len(queries)


def test_a_first_import_of_a_hundred_entries_takes_as_many_queries_as_one_of_ten():
    small, large = SourceFactory(may_show_images=True), SourceFactory(may_show_images=True)

    counted = (queries_to_store(small, feed(10)), queries_to_store(large, feed(100)))

    # Stories go in with their search vectors and tag links in one INSERT; tags and pictures in a few more.
    assert counted[0] == counted[1] <= 7
    assert Story.objects.filter(source=large).count() == 100


def test_updating_a_hundred_entries_takes_as_many_queries_as_updating_ten():
    small, large = SourceFactory(), SourceFactory()
    service.store_entries(source=small, entries=feed(10))
    service.store_entries(source=large, entries=feed(100))

    counted = (
        queries_to_store(small, feed(10, edition="second")),
        queries_to_store(large, feed(100, edition="second")),
    )

    assert counted[0] == counted[1] <= 8
    assert StoryRevision.objects.filter(story__source=large).count() == 100
    assert (
        Story.objects.get(source=large, original_url="https://quay.example.org/7").title
        == "Quay story 7, second edition"
    )
