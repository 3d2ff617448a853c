"""Reads of the follows app: the stories a reader follows, what a story page or a filtered list offers to
follow, the reader's saved stories, and their part of the "Your data" export."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Q

from newsreader.personal import limited_ids
from stories.models import Story, StoryQuerySet

from .models import FOLLOWABLE, DigestSettings, Follow, SavedStory

_CURSOR = re.compile(r"^(\d{1,18})-(\d{1,18})$")


@dataclass(frozen=True)
class Target:
    """Something a page offers to follow or unfollow, and whether the reader follows it."""

    kind: str
    slug: str
    label: str
    followed: bool


def stories_followed_by(reader) -> StoryQuerySet:
    """Published stories in a section, tag, region (a continent includes its countries) or source the reader
    follows, newest first, one card per coverage group."""
    follows = Follow.objects.of(reader)
    regions = follows.filter(region__isnull=False).values("region_id")
    tagged = Story.tags.through.objects.filter(tag_id__in=follows.filter(tag__isnull=False).values("tag_id")).values(
        "story_id"
    )
    return (
        Story.objects.published()
        .one_per_coverage_group()
        .filter(
            Q(section_id__in=follows.filter(section__isnull=False).values("section_id"))
            | Q(source_id__in=follows.filter(source__isnull=False).values("source_id"))
            | Q(region_id__in=regions)
            | Q(region__parent_id__in=regions)
            | Q(pk__in=tagged)
        )
        .order_by("-published_at", "-pk")
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def cursor_for(story: Story) -> str:
    """The keyset position after `story`: its publication time in microseconds and its id."""
    return f"{(story.published_at - _EPOCH) // _MICROSECOND}-{story.pk}"


def _after_cursor(stories: StoryQuerySet, cursor: str) -> StoryQuerySet:
    match = _CURSOR.match(cursor or "")
    if not match:
        return stories
    micros, pk = int(match[1]), int(match[2])
    try:
        published_at = _EPOCH + micros * _MICROSECOND
    except OverflowError:
        return stories
    return stories.filter(Q(published_at__lt=published_at) | Q(published_at=published_at, pk__lt=pk))


@dataclass(frozen=True)
class FollowingPage:
    follows: list[Follow]
    stories: list[Story]
    next_cursor: str


def following_page(*, reader, cursor: str = "", per_page: int) -> FollowingPage:
    """The reader's follows and one page of the stories they follow, in three queries whatever the size."""
    follows = list(Follow.objects.of(reader).with_targets())
    stories = list(_after_cursor(stories_followed_by(reader), cursor).for_cards()[: per_page + 1]) if follows else []
    more = len(stories) > per_page
    stories = stories[:per_page]
    return FollowingPage(follows, stories, cursor_for(stories[-1]) if more else "")


def saved_stories(reader):
    """The reader's saved stories, most recently saved first, each with its story ready for a card."""
    return (
        SavedStory.objects.filter(reader=reader, story__in=Story.objects.published())
        .select_related("story__source", "story__section", "story__region__parent")
        .order_by("-saved_at", "-pk")
    )


def story_targets(
    *, reader, story: Story, followed: frozenset | None = None, saved: frozenset[int] | None = None
) -> tuple[list[Target], bool]:
    """What the story page offers the reader to follow (its section, region, source and tags, with whether
    they follow each) and whether they saved the story: two queries, none for what the reader's facts
    (`followed`, `saved`: see `followed_targets`, `saved_story_ids`) already say."""
    offered = []
    if story.section_id:
        offered.append(("section", story.section))
    if story.region_id:
        offered.append(("region", story.region))
    offered.append(("source", story.source))
    offered += [("tag", tag) for tag in story.tags.all()]
    if followed is None:
        followed_pks = _followed(reader, [(kind, thing.pk) for kind, thing in offered])
    else:
        followed_pks = {(kind, pk) for kind, pk, _ in followed}
    targets = [Target(kind, thing.slug, str(thing), (kind, thing.pk) in followed_pks) for kind, thing in offered]
    if saved is not None:
        return targets, story.pk in saved
    return targets, SavedStory.objects.filter(reader=reader, story=story).exists()


def filter_targets(*, reader, filters, labels: dict[str, str], followed: frozenset | None = None) -> list[Target]:
    """The active list filters a reader can follow, with whether they do: one query (none unfiltered, or
    when the reader's facts say what they follow: `followed`). `labels` are the filters' readable names by
    kind, as the list shows them."""
    chosen = [(kind, getattr(filters, kind)) for kind in FOLLOWABLE if getattr(filters, kind)]
    if not chosen:
        return []
    if followed is not None:
        followed_slugs = {(kind, slug) for kind, _, slug in followed}
    else:
        condition = Q()
        for kind, slug in chosen:
            condition |= Q(**{f"{kind}__slug": slug})
        followed_slugs = {
            (kind, slug)
            for follow in Follow.objects.of(reader).filter(condition).with_targets()
            for kind, slug in [(follow.kind, follow.target.slug)]
        }
    return [Target(kind, slug, labels.get(kind, slug), (kind, slug) in followed_slugs) for kind, slug in chosen]


def followed_targets(reader) -> frozenset[tuple[str, int, str]] | None:
    """Everything the reader follows, as (kind, id, slug), from one query (None: more than a reader fact keeps)."""
    columns = [column for kind in FOLLOWABLE for column in (f"{kind}_id", f"{kind}__slug")]
    rows = limited_ids(Follow.objects.of(reader).order_by().values_list(*columns))
    if rows is None:
        return None
    return frozenset(
        (kind, row[2 * index], row[2 * index + 1])
        for row in rows
        for index, kind in enumerate(FOLLOWABLE)
        if row[2 * index] is not None
    )


def saved_story_ids(reader) -> frozenset[int] | None:
    """The ids of the stories the reader saved, from one query (None: more than a reader fact keeps)."""
    return limited_ids(SavedStory.objects.filter(reader=reader).order_by().values_list("story_id", flat=True))


def _followed(reader, wanted: list[tuple[str, int]]) -> set[tuple[str, int]]:
    if not wanted:
        return set()
    condition = Q()
    for kind, pk in wanted:
        condition |= Q(**{f"{kind}_id": pk})
    rows = Follow.objects.of(reader).filter(condition).values_list(*(f"{kind}_id" for kind in FOLLOWABLE))
    return {(kind, pk) for row in rows for kind, pk in zip(FOLLOWABLE, row, strict=True) if pk is not None}


def export_for(user) -> dict:
    """The reader's follows, saved stories and digest settings, as plain data for their JSON export."""
    digest = DigestSettings.objects.filter(reader=user).first()
    return {
        "follows": [
            {
                "kind": follow.kind,
                "name": str(follow.target),
                "slug": follow.target.slug,
                "followed_at": follow.created_at.isoformat(),
            }
            for follow in Follow.objects.of(user).with_targets().order_by("created_at", "pk")
        ],
        "saved_stories": [
            {"title": saved.story.title, "url": saved.story.get_absolute_url(), "saved_at": saved.saved_at.isoformat()}
            for saved in SavedStory.objects.filter(reader=user).select_related("story").order_by("saved_at", "pk")
        ],
        "digest": {
            "frequency": digest.frequency,
            "hour": digest.hour,
            "time_zone": digest.time_zone,
            "last_sent_at": digest.last_sent_at.isoformat() if digest.last_sent_at else None,
        }
        if digest
        else None,
    }
