"""Every feed of the conformance corpus through parsing and storage: stories or a clear error, never a crash."""

import pytest

from stories.importing import parse, service
from stories.models import Story
from tests.conftest import shared_data
from tests.factories import SourceFactory

pytestmark = pytest.mark.django_db


def import_corpus(folder) -> tuple[int, int, list[str]]:
    """(stories stored, clear errors, unexpected failures) for every file under `folder`."""
    stored, clear_errors, unexpected = 0, 0, []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            feed = parse.parse_feed(content=path.read_bytes(), url=f"https://feeds.example.org/{path.name}")
            counts = service.store_entries(source=SourceFactory(), entries=feed.entries)
        except parse.FeedParseError as error:
            assert str(error), f"{path}: an error without a message"
            clear_errors += 1
            continue
        except Exception as error:  # collected, to report every failing file at once
            unexpected.append(f"{path.relative_to(folder)}: {type(error).__name__}: {error}")
            continue
        stored += len(counts.new)
    return stored, clear_errors, unexpected


def test_well_formed_feeds_yield_stories_and_nothing_crashes():
    stored, _, unexpected = import_corpus(shared_data("feeds/wellformed"))

    assert not unexpected, "\n".join(unexpected[:20])
    assert stored > 100
    assert Story.objects.count() == stored
    assert not Story.objects.filter(body_html__icontains="<script").exists()


def test_broken_feeds_give_a_clear_error_or_their_entries_and_nothing_crashes():
    _, clear_errors, unexpected = import_corpus(shared_data("feeds/illformed"))

    assert not unexpected, "\n".join(unexpected[:20])
    assert clear_errors > 0
