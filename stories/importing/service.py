"""Importing a source: fetch its feed safely, parse it, store each entry once, record the run."""

import hashlib
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify

from stories import leases, pagecache
from stories.models import HostSlot, ImageCandidate, ImportRun, Source, Story, StoryRevision, Tag

from . import dedupe, extract, fetch, parse, rows, schedule

logger = logging.getLogger(__name__)

RUNS_KEPT_PER_SOURCE = 100
INTERRUPTED_REASON = (
    "The worker stopped before this import finished (it was killed or lost), so its lease lapsed; "
    "the source was imported again."
)
NEAR_DUPLICATE_WINDOW = timedelta(days=3)
STORY_TRACKED_FIELDS = ("title", "dek", "body_html")
# What a changed entry rewrites on its story: the entry's fields, what is derived from the body, the pipeline.
STORY_UPDATED_FIELDS = (
    "title",
    "dek",
    "body_html",
    "body_text",
    "reading_minutes",
    "original_url",
    "author",
    "guid",
    "entry_hash",
    *Story.pipeline_fields_after(Story.PipelineState.IMPORTED),
)
# Rows written by one INSERT or UPDATE: a feed's worth of stories in a statement or two.
STORIES_PER_STATEMENT = 500
# New stories are written in smaller batches, each while the next is prepared; a usual feed is one batch.
NEW_STORIES_PER_STATEMENT = 200
# Only the last batch of a long feed is waited for, so it is halved down to about this size.
LAST_NEW_STORIES_PER_STATEMENT = 25


class TransientImportError(Exception):
    """A network failure worth retrying soon (extracting a story's full text)."""


def is_transient(error: fetch.FetchError) -> bool:
    """Network trouble that may pass (timeouts, refused or reset connections). Not a refusal by our
    guard, a size limit or an HTTP status: a 429 or 5xx waits for the schedule and its Retry-After."""
    return isinstance(error, fetch.NetworkError | fetch.FetchTimeout)


@dataclass
class EntryCounts:
    new: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: int = 0
    rejected: int = 0


def _acquire(source_id: int, *, only_if_queued: bool) -> bool:
    """Take the source's import lease, and close the runs of a worker that died holding an earlier one.
    With `only_if_queued`, a source nobody asked to import (a duplicate or late message) is left alone."""
    now = timezone.now()
    sources = Source.objects.filter(pk=source_id).lease_lapsed(now)
    if only_if_queued:
        sources = sources.filter(import_queued_at__isnull=False)
    if not sources.update(import_locked_until=now + timedelta(seconds=leases.lease_seconds()), import_queued_at=None):
        return False
    ImportRun.objects.filter(source_id=source_id).interrupt(INTERRUPTED_REASON)
    return True


def _release(source_id: int) -> None:
    Source.objects.filter(pk=source_id).update(import_locked_until=None)


def _renew(source_id: int, slot: HostSlot) -> None:
    until = timezone.now() + timedelta(seconds=leases.lease_seconds())
    Source.objects.filter(pk=source_id).update(import_locked_until=until)
    HostSlot.objects.filter(pk=slot.pk, holder=slot.holder).update(lease_until=until)


@contextmanager
def host_slot(url: str) -> Iterator[HostSlot | None]:
    """One of IMPORT_MAX_PARALLEL_PER_HOST slots for fetching from `url`'s host, held as a lease in the
    database; yields None when every slot is taken, so no publisher gets more parallel requests."""
    host = (urlsplit(url).hostname or "")[:255]
    numbers = range(settings.IMPORT_MAX_PARALLEL_PER_HOST)
    HostSlot.objects.bulk_create([HostSlot(host=host, number=number) for number in numbers], ignore_conflicts=True)
    token = uuid.uuid4().hex
    now = timezone.now()
    for number in numbers:
        taken = (
            HostSlot.objects.filter(host=host, number=number)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(holder=token, lease_until=now + timedelta(seconds=leases.lease_seconds()))
        )
        if taken:
            slot = HostSlot.objects.get(host=host, number=number)
            try:
                yield slot
            finally:
                HostSlot.objects.filter(pk=slot.pk, holder=token).update(holder="", lease_until=None)
            return
    yield None


def import_source(*, source_id: int, only_if_queued: bool = False) -> ImportRun | None:
    """Import one source now. Returns the run, or None when another worker holds its lease, its host has
    as many imports running as it may (then it is due again in one to two PIPELINE_RETRY_SECONDS), or, with
    `only_if_queued`, nobody asked for it (it was imported since it was queued)."""
    if not _acquire(source_id, only_if_queued=only_if_queued):
        logger.info("Source %s is being imported or was not asked for; skipping.", source_id)
        return None
    try:
        source = Source.objects.get(pk=source_id)
        with host_slot(source.feed_url) as slot:
            if slot is None:
                logger.info("Host of %s is busy with other imports; trying again shortly.", source)
                retry = settings.PIPELINE_RETRY_SECONDS
                delay = timedelta(seconds=random.uniform(retry, 2 * retry))
                Source.objects.filter(pk=source_id).update(next_fetch_at=timezone.now() + delay)
                return None
            run = ImportRun.objects.create(source=source)
            with leases.kept_alive(lambda: _renew(source_id, slot)):
                try:
                    return _run_import(source, run)
                except BaseException as error:
                    ImportRun.objects.filter(pk=run.pk).interrupt(f"The import stopped with an error: {error!r}")
                    raise
    finally:
        _release(source_id)


def _run_import(source: Source, run: ImportRun) -> ImportRun:
    source.last_fetched_at = timezone.now()
    try:
        response = fetch.fetch(url=source.feed_url, etag=source.etag, last_modified=source.last_modified)
    except fetch.HTTPStatusError as error:
        run.http_status = error.status
        if error.status == 410:
            source.is_active = False
            source.deactivated_reason = "The feed is gone (HTTP 410); the publisher removed it."
        _fail(source, run, str(error), retry_after=error.retry_after)
        return run
    except fetch.FetchError as error:
        _fail(source, run, str(error), transient=is_transient(error))
        return run

    run.http_status = response.status
    source.etag = response.etag or ""
    source.last_modified = response.last_modified or ""
    headers = dict(response.headers)
    hint = schedule.caching_hint_minutes(headers)
    if response.not_modified:
        _succeed(source, run, ImportRun.Outcome.NOT_MODIFIED, hint)
        return run

    digest = dedupe.content_hash(response.body)
    if digest == source.content_hash:
        _succeed(source, run, ImportRun.Outcome.UNCHANGED, hint)
        return run

    try:
        feed = parse.parse_feed(content=response.body, url=response.url, headers=headers)
    except parse.FeedParseError as error:
        _fail(source, run, str(error))
        return run

    run.error = feed.problem  # what was wrong with a feed we could still read (entries cut, say)
    if feed.ttl_minutes:
        hint = max(hint, feed.ttl_minutes)
    counts = store_entries(source=source, entries=feed.entries)
    source.content_hash = digest
    run.new_count, run.updated_count = len(counts.new), len(counts.updated)
    run.unchanged_count, run.rejected_count = counts.unchanged, counts.rejected
    source.items_per_day = _items_per_day(source)
    _succeed(source, run, ImportRun.Outcome.IMPORTED, hint)
    group_near_duplicates(story_ids=counts.new)
    return run


def _succeed(source: Source, run: ImportRun, outcome: str, hint_minutes: int) -> None:
    source.last_success_at = timezone.now()
    source.last_status = run.http_status
    source.consecutive_errors = 0
    source.last_error = ""
    source.min_interval_minutes = hint_minutes
    source.next_fetch_at = timezone.now() + schedule.next_fetch_delay(
        interval_minutes=source.fetch_interval_minutes,
        min_interval_minutes=hint_minutes,
        items_per_day=source.items_per_day,
    )
    _finish(source, run, outcome)


def _fail(
    source: Source, run: ImportRun, message: str, *, retry_after: int | None = None, transient: bool = False
) -> None:
    logger.warning("Import of %s failed: %s", source, message)
    source.last_status = run.http_status
    source.consecutive_errors += 1
    source.last_error = message
    delay = schedule.transient_retry_delay(source.consecutive_errors) if transient else None
    source.next_fetch_at = timezone.now() + (
        delay
        or schedule.next_fetch_delay(
            interval_minutes=source.fetch_interval_minutes,
            min_interval_minutes=source.min_interval_minutes,
            consecutive_errors=source.consecutive_errors,
            retry_after_seconds=retry_after,
        )
    )
    run.error = message
    _finish(source, run, ImportRun.Outcome.FAILED)


def _finish(source: Source, run: ImportRun, outcome: str) -> None:
    run.outcome = outcome
    run.finished_at = timezone.now()
    run.save()
    source.save(
        update_fields=[
            "is_active",
            "deactivated_reason",
            "etag",
            "last_modified",
            "content_hash",
            "key_strategy",
            "min_interval_minutes",
            "last_fetched_at",
            "last_success_at",
            "last_status",
            "consecutive_errors",
            "last_error",
            "next_fetch_at",
            "items_per_day",
        ]
    )
    stale = ImportRun.objects.filter(source=source).order_by("-started_at").values_list("pk", flat=True)
    ImportRun.objects.filter(pk__in=list(stale[RUNS_KEPT_PER_SOURCE:])).delete()


def _items_per_day(source: Source) -> float:
    since = timezone.now() - timedelta(days=7)
    return round(Story.objects.filter(source=source, created_at__gte=since).count() / 7, 2)


def entry_fields(entry: "parse.ParsedEntry") -> dict:
    """The story fields an entry gives, before labelling."""
    body = entry.content_html or entry.summary_html or ""
    summary_text = parse.text_of(entry.summary_html) if entry.content_html else ""
    return {
        "title": (entry.title or _title_from_text(parse.text_of(body)))[:300],
        "dek": summary_text[:600],
        "body_html": body,
        "original_url": entry.link[:2000],
        "author": (entry.author or "")[:200],
        "guid": (entry.guid or "")[:2000],
    }


def _title_from_text(text: str, words: int = 12) -> str:
    """A title for an untitled entry (JSON Feed allows them): its first words."""
    head = text.split()
    return " ".join(head[:words]) + ("…" if len(head) > words else "")


def _entry_hash(fields: dict) -> str:
    material = "\x1f".join(str(fields[name]) for name in ("title", "dek", "body_html", "original_url"))
    return hashlib.sha256(material.encode()).hexdigest()


def _entry_key(entry: "parse.ParsedEntry", strategy: str) -> str:
    """The entry's key within its source. An entry with no GUID (or GUIDs not trusted), no link and no
    title has nothing but its text to tell it apart: keying it by title and date would make every such
    entry of a day one story, so it is keyed by its content."""
    has_guid = strategy == dedupe.KeyStrategy.GUID and (entry.guid or "").strip()
    if has_guid or entry.link or (entry.title or "").strip():
        return dedupe.entry_key(entry, strategy)
    material = f"content:{entry.content_html or entry.summary_html}"
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def store_entries(*, source: Source, entries: Iterable["parse.ParsedEntry"]) -> EntryCounts:
    """Create or update a story per entry, in one transaction: each entry is stored once whatever
    happens around it (a second import, a worker killed half-way, a redelivered task)."""
    entries = list(entries)
    counts = EntryCounts()
    # An entry without a link is still a story (RSS 0.92 items may be only a description, Atom entries
    # need no link): it is stored without an original URL, keyed by its GUID or its content.
    usable = [entry for entry in entries if entry.title or entry.summary_html or entry.content_html]
    counts.rejected = len(entries) - len(usable)
    source.key_strategy = dedupe.choose_key_strategy(usable, source.key_strategy)
    keyed: dict[str, parse.ParsedEntry] = {}
    for entry in usable:
        keyed.setdefault(_entry_key(entry, source.key_strategy), entry)  # a repeated entry: first wins
    with transaction.atomic():
        existing = {
            story.entry_key: story
            for story in Story.objects.filter(source=source).filter(rows.InArray(F("entry_key"), list(keyed)))
        }
        fresh, changed = [], []
        for key, entry in keyed.items():
            fields = entry_fields(entry)
            entry_hash = _entry_hash(fields)
            story = existing.get(key)
            if story is None:
                fresh.append((key, entry, fields, entry_hash))
            elif story.entry_hash != entry_hash:
                changed.append((story, fields, entry_hash))
            else:
                counts.unchanged += 1
        counts.updated = _update_stories(changed)
        counts.new = _create_stories(source, fresh)
    return counts


def _create_stories(source: Source, fresh: list[tuple[str, "parse.ParsedEntry", dict, str]]) -> list[int]:
    """Insert new stories with a few statements whatever their number: their tags' rows first, then per
    batch (_batches) one insert of stories, search vectors and tag links, then their pictures."""
    if not fresh:
        return []
    status = Story.Status.PUBLISHED if source.publish_mode == Source.PublishMode.IMMEDIATELY else Story.Status.DRAFT
    slugs = _new_slugs(source, [(key, fields["title"]) for key, _, fields, _ in fresh])
    tag_ids_by_key = _tag_hints({key: entry.categories for key, entry, _, _ in fresh})
    stories = []
    # Each batch is written while the next is sanitised and signed.
    with rows.StoryInserts() as inserts:
        for start, stop in _batches(len(fresh)):
            batch = []
            new_story = _StoryMaker(
                source_id=source.pk,
                section_id=source.default_section_id,
                region_id=source.region_hint_id,
                status=status,
                **Story.pipeline_fields_after(Story.PipelineState.IMPORTED),
            )
            for key, entry, fields, entry_hash in fresh[start:stop]:
                story = new_story(
                    entry_key=key,
                    entry_hash=entry_hash,
                    published_at=entry.published or timezone.now(),
                    slug=slugs[key],
                    **fields,
                )
                story.clean_text()
                batch.append(story)
            texts = (f"{story.title} {story.dek} {story.body_text}" for story in batch)
            for story, signature in zip(batch, dedupe.story_signatures(texts), strict=True):
                story.similarity_signature = signature
            inserts.add(batch, tag_ids={story.entry_key: tag_ids_by_key.get(story.entry_key, ()) for story in batch})
            stories += batch
    ids = {story.entry_key: story.pk for story in stories}
    # The feed's pictures become candidates for the image step; pages never link to them.
    ImageCandidate.objects.remember_source_images(
        source=source, images_by_story={ids[key]: entry.images for key, entry, _, _ in fresh}
    )
    # bulk_create sends no post_save: the lists are invalidated here, as the signal would have.
    transaction.on_commit(pagecache.stories_changed)
    return [ids[key] for key, *_ in fresh]


class _StoryMaker:
    """Makes new Story instances that share the `shared` field values (by attname), as Story(**fields) would.
    Django builds them from values in field order, as it builds the rows it loads: with keywords it looks up
    each of the model's fields by name and works out its default, nearly three times as long (35 µs a story)."""

    def __init__(self, **shared) -> None:
        fields = Story._meta.concrete_fields
        self._position = {field.attname: number for number, field in enumerate(fields)}
        self._values = [shared[field.attname] if field.attname in shared else field.get_default() for field in fields]
        # Defaults a function makes (a new dict for a JSON field, the time now) are made again for each story.
        self._made_defaults = [
            (number, field.attname, field.get_default)
            for number, field in enumerate(fields)
            if field.attname not in shared and field.has_default() and callable(field.default)
        ]

    def __call__(self, **fields) -> Story:
        values = self._values.copy()
        for number, name, default in self._made_defaults:
            if name not in fields:
                values[number] = default()
        for name, value in fields.items():
            values[self._position[name]] = value
        return Story(*values)


def _batches(count: int) -> list[tuple[int, int]]:
    """Start and stop of each batch of `count` new stories: NEW_STORIES_PER_STATEMENT each, and in a feed of
    more, the last of them halved again and again down to LAST_NEW_STORIES_PER_STATEMENT, since the database
    writes each batch while the next is prepared and only the last one is waited for."""
    batches, start = [], 0
    while count - start > NEW_STORIES_PER_STATEMENT:
        batches.append((start, start + NEW_STORIES_PER_STATEMENT))
        start += NEW_STORIES_PER_STATEMENT
    size = count - start
    while batches and size > LAST_NEW_STORIES_PER_STATEMENT:
        size = (size + 1) // 2
        batches.append((start, start + size))
        start += size
        size = count - start
    batches.append((start, count))
    return batches


def _new_slugs(source: Source, titles: list[tuple[str, str]]) -> dict[str, str]:
    """A unique slug per entry key: the title's, or with a suffix from the source and key when taken."""
    wanted = {key: slugify(title)[:200].strip("-") or "story" for key, title in titles}
    alternates = {
        key: f"{slug[:188]}-{hashlib.sha256(f'{source.pk}:{key}'.encode()).hexdigest()[:10]}"
        for key, slug in wanted.items()
    }
    candidates = list({*wanted.values(), *alternates.values()})
    taken = set(Story.objects.filter(rows.InArray(F("slug"), candidates)).values_list("slug", flat=True))
    slugs = {}
    for key, slug in wanted.items():
        candidate, number = (slug if slug not in taken else alternates[key]), 2
        while candidate in taken:
            candidate, number = f"{alternates[key]}-{number}", number + 1
        taken.add(candidate)
        slugs[key] = candidate
    return slugs


def _update_stories(changed: list[tuple[Story, dict, str]]) -> list[int]:
    """Apply changed entries to their stories with a few statements whatever their number: the previous
    versions kept as revisions, the stories written, their search vectors recomputed. Returns their ids."""
    if not changed:
        return []
    revisions = []
    for story, fields, entry_hash in changed:
        revisions.append(
            StoryRevision(
                story=story,
                changed_fields=[name for name in STORY_TRACKED_FIELDS if getattr(story, name) != fields[name]],
                title=story.title,
                dek=story.dek,
                body_html=story.body_html,
            )
        )
        for name, value in {**fields, **Story.pipeline_fields_after(Story.PipelineState.IMPORTED)}.items():
            setattr(story, name, value)
        story.entry_hash = entry_hash
        story.clean_text()
    StoryRevision.objects.bulk_create(revisions, batch_size=STORIES_PER_STATEMENT)
    stories = [story for story, _, _ in changed]
    Story.objects.bulk_update(stories, STORY_UPDATED_FIELDS, batch_size=STORIES_PER_STATEMENT)
    ids = [story.pk for story in stories]
    Story.objects.filter(pk__in=ids).refresh_search_vectors()
    # bulk_update sends no post_save: invalidate the pages the signal would have, the stories' own and
    # those of the stories they duplicate.
    duplicated = {story.duplicate_of_id for story in stories} - {None}
    slugs = [story.slug for story in stories]
    slugs += Story.objects.filter(pk__in=duplicated).values_list("slug", flat=True) if duplicated else []
    transaction.on_commit(lambda: pagecache.stories_changed(*slugs))
    return ids


def _tag_hints(categories_by_key: dict[str, Iterable[str]]) -> dict[str, list[int]]:
    """The ids of the tags that keep the feed's own categories of each entry until the labeller decides,
    creating the tags that do not exist yet."""
    slugs: dict[str, str] = {}  # a feed repeats its few categories on every entry: each is slugified once
    names_by_key = {}
    for key, categories in categories_by_key.items():
        names = {}
        for name in list(categories)[:6]:
            if name not in slugs:
                slugs[name] = slugify(name)[:100]
            if slug := slugs[name]:
                names[slug] = name.strip()[:100]
        if names:
            names_by_key[key] = names
    if not names_by_key:
        return {}
    all_names = {slug: name for names in names_by_key.values() for slug, name in names.items()}
    Tag.objects.bulk_create([Tag(slug=slug, name=name) for slug, name in all_names.items()], ignore_conflicts=True)
    tag_ids = dict(Tag.objects.filter(slug__in=all_names).values_list("slug", "pk"))
    return {key: [tag_ids[slug] for slug in names if slug in tag_ids] for key, names in names_by_key.items()}


def group_near_duplicates(*, story_ids: list[int]) -> int:
    """Point each new story at an earlier near-duplicate from another source, if there is one: the most
    similar, the earliest of equally similar ones."""
    if not story_ids:
        return 0
    since = timezone.now() - NEAR_DUPLICATE_WINDOW
    candidates = list(
        Story.objects.filter(created_at__gte=since, duplicate_of__isnull=True, similarity_signature__isnull=False)
        .exclude(rows.InArray(F("pk"), story_ids))
        .values_list("pk", "source_id", "similarity_signature")
    )
    new_stories = list(
        Story.objects.filter(rows.InArray(F("pk"), story_ids)).values_list("pk", "source_id", "similarity_signature")
    )
    earlier = dedupe.SimilarityIndex([(pk, bytes(signature)) for pk, _, signature in candidates])
    source_of = {pk: source_id for pk, source_id, _ in candidates}
    # The new stories that matched nothing, by source. A feed's own stories are never compared with each other
    # (an import's are all of one source, often alike), so each source's are indexed only once a story of
    # another source asks.
    unmatched: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    unmatched_indexes: dict[int, dedupe.SimilarityIndex] = defaultdict(dedupe.SimilarityIndex)
    grouped = 0
    for pk, source_id, signature in new_stories:
        if signature is None:
            continue
        signature = bytes(signature)
        found = [earlier.most_similar(signature, where=lambda other, own=source_id: source_of[other] != own)]
        for other_source, waiting in unmatched.items():
            if other_source != source_id:
                index = unmatched_indexes[other_source]
                for other, other_signature in waiting:
                    index.add(other, other_signature)
                waiting.clear()
                found.append(index.most_similar(signature))
        found = [match for match in found if match is not None]
        if found:
            _, match = min(found, key=lambda match: (-match[0], match[1]))
            Story.objects.filter(pk=pk).update(duplicate_of=match)
            grouped += 1
        else:
            unmatched[source_id].append((pk, signature))
    return grouped


def extract_full_text(*, story_id: int) -> Story | None:
    """Replace a story's feed text by the linked page's main text when that is longer."""
    story = Story.objects.filter(pk=story_id).first()
    if story is None or not story.original_url:
        # A story whose entry had no link has no page to read; the feed's text is all there is.
        return story
    try:
        page = fetch.fetch(url=story.original_url)
    except fetch.FetchError as error:
        logger.info("Full text of story %s not fetched: %s", story_id, error)
        if is_transient(error):
            raise TransientImportError(str(error)) from error
        return story
    article = extract.extract_article(html=page.body, url=page.url)
    if article is not None and article.image_url:
        ImageCandidate.objects.remember_source_image(story=story, url=article.image_url, alt=article.image_alt)
    body = extract.choose_body(story.body_html, article)
    if body != story.body_html:
        story.body_html = body
        story.save()
    return story
