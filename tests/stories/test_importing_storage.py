"""New stories are written in a few statements, batch by batch, and come back exactly as they were built: every
character of their text, their search vectors, signatures, tags and ids."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from stories.importing import dedupe, rows, service
from stories.importing.parse import ParsedEntry
from stories.models import Story
from tests.factories import SourceFactory, StoryFactory

pytestmark = pytest.mark.django_db

AWKWARD_TEXT = [
    "Quotes \"double\" and 'single'",
    "Back\\slash and {braces}, commas, NULL",
    "Ünïcödé, 日本語 and 🙂",
    "Tab\tand new\nline",
    "",
]


def entry(n: int, **changes) -> ParsedEntry:
    fields = {
        "title": f"Berth {n}: {AWKWARD_TEXT[n % len(AWKWARD_TEXT)]}",
        "link": f"https://quay.example.org/berth/{n}?a=1&b={{2}}",
        "guid": f"berth-{n}",
        "author": AWKWARD_TEXT[n % len(AWKWARD_TEXT)],
        "published": datetime(2026, 1, 1, tzinfo=UTC) - timedelta(minutes=n),
        "published_was_in_future": False,
        "summary_html": f"<p>Cranes at berth {n} &amp; the tide: {AWKWARD_TEXT[(n + 1) % len(AWKWARD_TEXT)]}</p>",
        "content_html": "",
        "categories": ("Quay", f"Berth {n % 3}"),
    }
    return ParsedEntry(**{**fields, **changes})


def test_new_stories_keep_every_character_of_their_fields():
    source = SourceFactory()
    entries = [entry(n) for n in range(12)] + [entry(12, guid="unit\x1fseparator", author="\\")]

    counts = service.store_entries(source=source, entries=entries)

    stored = {story.guid: story for story in Story.objects.filter(pk__in=counts.new)}
    assert len(stored) == len(entries)
    for parsed in entries:
        story = stored[parsed.guid]
        expected = Story(**service.entry_fields(parsed))
        expected.clean_text()
        assert (story.title, story.author, story.original_url) == (parsed.title, parsed.author, parsed.link)
        assert (story.body_html, story.body_text, story.reading_minutes) == (
            expected.body_html,
            expected.body_text,
            expected.reading_minutes,
        )
        assert story.published_at == parsed.published
        assert bytes(story.similarity_signature) == dedupe.story_signature(
            f"{story.title} {story.dek} {story.body_text}"
        )
        assert sorted(story.tags.values_list("name", flat=True)) == sorted(parsed.categories)


def test_a_feed_of_a_single_entry_with_empty_fields_is_stored():
    source = SourceFactory()

    counts = service.store_entries(source=source, entries=[entry(4, author="", guid="", categories=())])

    story = Story.objects.get(pk=counts.new[0])
    assert (story.author, story.guid, story.dek) == ("", "", "")
    assert story.title == "Berth 4: "


def test_a_long_feed_is_written_in_batches_and_each_story_gets_its_own_id_and_tags():
    source = SourceFactory()
    entries = [entry(n) for n in range(2 * service.NEW_STORIES_PER_STATEMENT + 50)]

    counts = service.store_entries(source=source, entries=entries)

    assert len(set(counts.new)) == len(entries)
    stories = Story.objects.filter(source=source)
    assert stories.count() == len(entries)
    for story in stories.filter(guid__in=["berth-0", "berth-250", "berth-449"]):
        number = int(story.guid.split("-")[1])
        assert story.original_url == entries[number].link
        assert sorted(story.tags.values_list("name", flat=True)) == ["Berth " + str(number % 3), "Quay"]
    assert list(Story.objects.search("cranes berth")) != []


def test_a_batch_that_breaks_a_constraint_leaves_none_of_the_feeds_stories_behind():
    source, taken = SourceFactory(), StoryFactory()
    stories = [
        Story(source=source, title=f"Berth {n}", slug=taken.slug if n == 3 else f"berth-{n}", entry_key=f"key-{n}")
        for n in range(5)
    ]

    with pytest.raises(IntegrityError), transaction.atomic(), rows.StoryInserts() as inserts:
        inserts.add(stories[:2], tag_ids={})
        inserts.add(stories[2:], tag_ids={})

    assert not Story.objects.filter(source=source).exists()
    assert list(Story.objects.all()) == [taken]


@pytest.mark.parametrize("count", [1, 10, 200, 201, 450, 1000, 1001])
def test_a_long_feeds_stories_go_in_full_batches_and_a_small_last_one(count):
    batches = service._batches(count)

    assert [start for start, _ in batches] == [0] + [stop for _, stop in batches[:-1]]
    assert batches[-1][1] == count
    assert all(0 < stop - start <= service.NEW_STORIES_PER_STATEMENT for start, stop in batches)
    if count <= service.NEW_STORIES_PER_STATEMENT:
        assert batches == [(0, count)]
    else:
        assert batches[-1][1] - batches[-1][0] <= service.LAST_NEW_STORIES_PER_STATEMENT


def test_a_story_made_from_field_values_is_the_story_keyword_arguments_make():
    source = SourceFactory()
    shared = {"source_id": source.pk, "section_id": None, "status": Story.Status.PUBLISHED}
    own = {"entry_key": "key-1", "title": "Berth 1", "slug": "berth-1", "guid": "berth-1"}
    make = service._StoryMaker(**shared)

    made, other = make(**own), make(**{**own, "entry_key": "key-2"})
    expected = Story(**shared, **own)

    for field in Story._meta.concrete_fields:
        if field.name not in ("published_at", "id"):
            assert getattr(made, field.attname) == getattr(expected, field.attname), field.name
    assert made.pk is None and made._state.adding
    assert abs(made.published_at - expected.published_at) < timedelta(seconds=5)
    assert made.label_confidence == {} and made.label_confidence is not other.label_confidence
    assert made.pipeline_steps is not other.pipeline_steps


def test_dates_signatures_and_missing_signatures_are_stored_as_built():
    source = SourceFactory()
    offset = timezone(timedelta(hours=5, minutes=30))
    stories = [
        Story(
            source=source,
            title=f"Berth {n}",
            slug=f"berth-{n}",
            entry_key=f"key-{n}",
            published_at=datetime(2026, 1, 1, 8, 30, 15, 123456 * (n % 2), tzinfo=offset) + timedelta(minutes=n),
            similarity_signature=None if n == 1 else bytes([1, n]) + b"\x00\x1f\\\x7f\xff" * 100,
        )
        for n in range(4)
    ]

    with transaction.atomic(), rows.StoryInserts() as inserts:
        inserts.add(stories, tag_ids={})

    for story in stories:
        stored = Story.objects.get(pk=story.pk)
        assert stored.published_at == story.published_at
        assert stored.created_at == story.created_at and stored.updated_at == story.updated_at
        assert (None if stored.similarity_signature is None else bytes(stored.similarity_signature)) == (
            story.similarity_signature
        )


def test_an_array_lookup_finds_what_an_in_lookup_finds():
    stories = [StoryFactory(slug=slug) for slug in ("quay", "quay-2", "unit\x1fseparator", "back\\slash")]
    slugs = ["quay", "unit\x1fseparator", "back\\slash", "missing", None]
    pks = [stories[0].pk, stories[3].pk, 10**9]

    def found(queryset) -> set[int]:
        return set(queryset.values_list("pk", flat=True))

    assert found(Story.objects.filter(rows.InArray(F("slug"), slugs))) == found(Story.objects.filter(slug__in=slugs))
    assert found(Story.objects.filter(rows.InArray(F("slug"), ["quay"]))) == {stories[0].pk}
    assert found(Story.objects.filter(rows.InArray(F("pk"), pks))) == {stories[0].pk, stories[3].pk}
    assert found(Story.objects.exclude(rows.InArray(F("pk"), pks))) == {stories[1].pk, stories[2].pk}
    assert found(Story.objects.filter(rows.InArray(F("slug"), []))) == set()
