"""Writes of the follows app: follow and unfollow, save and unsave, digest settings.

Follows and saves are idempotent (a unique key per reader and thing) and count towards
FOLLOWS_CHANGES_PER_HOUR per reader, counted in the cache like label reports (stories/reports.py).
"""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from newsreader import errors
from newsreader.ratelimits import count_in_window
from stories.models import Story

from .models import FOLLOWABLE, DigestSettings, Follow, SavedStory

RATE_WINDOW_SECONDS = 3600


class FollowError(errors.UserError):
    """A change the reader cannot make; its kind from `newsreader.errors` gives the HTTP status."""


class UnknownTarget(FollowError):
    status = 404


class TooManyChanges(FollowError, errors.TooManyRequests):
    pass


def count_change(reader) -> None:
    """Count a follow, unfollow, save or unsave in the reader's current hour; refuse past
    FOLLOWS_CHANGES_PER_HOUR with `TooManyChanges`."""
    changes = count_in_window(f"follow-changes:{reader.pk}", window_seconds=RATE_WINDOW_SECONDS)
    limit = settings.FOLLOWS_CHANGES_PER_HOUR
    if changes.over(limit):
        raise TooManyChanges(
            f"You have followed, unfollowed or saved {limit} times this hour, the most we take from one reader. "
            f"Please try again in {max(1, round(changes.resets_in / 60))} minutes.",
            retry_after=changes.resets_in,
        )


def _target(kind: str, slug: str):
    model = FOLLOWABLE.get(kind)
    found = model.objects.filter(slug=slug).first() if model else None
    if found is None:
        raise UnknownTarget("There is nothing by that name to follow.")
    return found


def follow(*, reader, kind: str, slug: str) -> Follow:
    """The reader follows the section, tag, region or source named by `kind` and `slug`; following it again
    changes nothing."""
    count_change(reader)
    target = _target(kind, slug)
    try:
        with transaction.atomic():
            follow, _ = Follow.objects.get_or_create(reader=reader, **{kind: target})
    except IntegrityError:  # the same follow posted twice at once
        follow = Follow.objects.get(reader=reader, **{kind: target})
    return follow


def unfollow(*, reader, kind: str, slug: str) -> bool:
    """The reader stops following it. True when they were following it."""
    count_change(reader)
    if kind not in FOLLOWABLE:
        raise UnknownTarget("There is nothing by that name to follow.")
    deleted, _ = Follow.objects.filter(reader=reader, **{f"{kind}__slug": slug}).delete()
    return bool(deleted)


def save_story(*, reader, story: Story) -> SavedStory:
    count_change(reader)
    try:
        with transaction.atomic():
            saved, _ = SavedStory.objects.get_or_create(reader=reader, story=story)
    except IntegrityError:
        saved = SavedStory.objects.get(reader=reader, story=story)
    return saved


def unsave_story(*, reader, story: Story) -> bool:
    count_change(reader)
    deleted, _ = SavedStory.objects.filter(reader=reader, story=story).delete()
    return bool(deleted)


def digest_settings_for(reader) -> DigestSettings:
    """The reader's digest settings, unsaved defaults (off) when they never chose any."""
    return DigestSettings.objects.filter(reader=reader).first() or DigestSettings(reader=reader)


def digest_settings_update(*, reader, frequency: str, hour: int, time_zone: str) -> DigestSettings:
    """Store the reader's choice and when their next digest is due."""
    with transaction.atomic():
        digest, _ = DigestSettings.objects.select_for_update().get_or_create(reader=reader)
        digest.frequency, digest.hour, digest.time_zone = frequency, hour, time_zone
        digest.full_clean()
        digest.next_due_at = digest.next_due_after(timezone.now())
        digest.save()
    return digest


def digest_unsubscribe(*, reader) -> None:
    """Turn the reader's digest off (the one-click unsubscribe)."""
    DigestSettings.objects.filter(reader=reader).update(
        frequency=DigestSettings.Frequency.OFF, next_due_at=None, updated_at=timezone.now()
    )
