"""The email digest: the best new stories among what a reader follows, daily or weekly at their hour.

The hourly beat task calls `send_due_digests`, which works through the due readers in batches of
DIGEST_BATCH_READERS. A batch costs the same few queries whatever its size (the readers, their follows,
the candidate stories with their tags, what their digests already carried, their addresses); each
reader's digest is then picked in memory.

"Best" is `story_score`: DIGEST_COMMENT_WEIGHT points a visible comment plus one a view, newest first
on ties. A story is new when it was published since the reader's last digest (at most one period back)
and no digest of theirs carried it yet. A reader with nothing new gets no mail.

Each batch is claimed before any mail goes out: the readers' next due times move on (rows locked with
SKIP LOCKED, so two runs never take the same reader) and the stories are recorded as sent. A mail the
server refuses hands its claim back, so the next hourly run tries that reader again; a run killed
between the claim and the mail leaves that digest unsent rather than ever sending a story twice.
"""

import functools
import logging
import smtplib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sites.models import Site
from django.core import signing
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from stories.models import Story

from .models import DigestedStory, DigestSettings, Follow

logger = logging.getLogger(__name__)

DIGEST_BATCH_READERS = 500
DIGEST_COMMENT_WEIGHT = 10
UNSUBSCRIBE_SALT = "follows.digest.unsubscribe"


def story_score(*, comment_count: int, view_count: int) -> int:
    """How good a story is for a digest: a comment says more about a story than a view does."""
    return comment_count * DIGEST_COMMENT_WEIGHT + view_count


# --- Unsubscribing ---------------------------------------------------------------------------


def unsubscribe_token(*, reader_id: int) -> str:
    """A token that turns this reader's digest off, valid until the site's secret key changes."""
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign(str(reader_id))


def reader_for_unsubscribe_token(token: str):
    """The reader a token was made for, or None when it is forged, damaged or their account is gone."""
    try:
        reader_id = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token)
    except signing.BadSignature:
        return None
    return get_user_model().objects.filter(pk=reader_id).first()


def base_url() -> str:
    """Links in digests start where reply mail's do (COMMENTS_EMAIL_BASE_URL, else the site's domain)."""
    base = settings.COMMENTS_EMAIL_BASE_URL.rstrip("/")
    if not base:
        scheme = "http" if settings.DEBUG else "https"
        base = f"{scheme}://{Site.objects.get_current().domain}"
    return base


@functools.lru_cache(maxsize=10_000)
def _story_path(slug: str) -> str:
    # Thousands of digests list the same few thousand stories: resolve each path once.
    return reverse("stories:detail", kwargs={"slug": slug})


# --- Building --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestStory:
    pk: int
    title: str
    slug: str
    dek: str
    source_name: str
    section_name: str
    published_at: datetime
    comment_count: int
    score: int


@dataclass
class Digest:
    """One reader's digest, ready to be mailed."""

    reader_id: int
    username: str
    address: str
    stories: list[DigestStory]


@dataclass
class _Candidates:
    """The new stories any reader of a batch might get, best first, indexed by what they are filed under."""

    stories: list[DigestStory] = field(default_factory=list)
    by_topic: dict[tuple[str, int], list[int]] = field(default_factory=lambda: defaultdict(list))


def _candidates(follows: list[dict], *, since: datetime, now: datetime) -> _Candidates:
    sections, tags, regions, sources = set(), set(), set(), set()
    for follow in follows:
        for ids, key in ((sections, "section_id"), (tags, "tag_id"), (regions, "region_id"), (sources, "source_id")):
            if follow[key] is not None:
                ids.add(follow[key])
    rows = list(
        Story.objects.filter(status=Story.Status.PUBLISHED, published_at__gt=since, published_at__lte=now)
        .one_per_coverage_group()
        .filter(
            Q(section_id__in=sections)
            | Q(source_id__in=sources)
            | Q(region_id__in=regions)
            | Q(region__parent_id__in=regions)
            | Q(pk__in=Story.tags.through.objects.filter(tag_id__in=tags).values("story_id"))
        )
        .values(
            "pk",
            "title",
            "slug",
            "dek",
            "published_at",
            "comment_count",
            "view_count",
            "section_id",
            "section__name",
            "source_id",
            "source__name",
            "region_id",
            "region__parent_id",
        )
    )
    rows.sort(
        key=lambda row: (
            story_score(comment_count=row["comment_count"], view_count=row["view_count"]),
            row["published_at"],
            row["pk"],
        ),
        reverse=True,
    )
    found = _Candidates()
    rank_of = {}
    for rank, row in enumerate(rows):
        rank_of[row["pk"]] = rank
        found.stories.append(
            DigestStory(
                pk=row["pk"],
                title=row["title"],
                slug=row["slug"],
                dek=row["dek"],
                source_name=row["source__name"],
                section_name=row["section__name"] or "",
                published_at=row["published_at"],
                comment_count=row["comment_count"],
                score=story_score(comment_count=row["comment_count"], view_count=row["view_count"]),
            )
        )
        found.by_topic[("source", row["source_id"])].append(rank)
        if row["section_id"]:
            found.by_topic[("section", row["section_id"])].append(rank)
        if row["region_id"]:
            found.by_topic[("region", row["region_id"])].append(rank)
        if row["region__parent_id"]:
            found.by_topic[("region", row["region__parent_id"])].append(rank)
    if tags and rank_of:
        tagged = Story.tags.through.objects.filter(tag_id__in=tags, story_id__in=list(rank_of)).values_list(
            "tag_id", "story_id"
        )
        for tag_id, story_id in tagged:
            found.by_topic[("tag", tag_id)].append(rank_of[story_id])
    return found


def build_digests(batch: list[DigestSettings], *, now: datetime) -> list[Digest]:
    """The digests of a batch of readers, in five queries whatever the batch's size; readers with nothing
    new (or no verified address) get none."""
    if not batch:
        return []
    reader_ids = [digest_settings.reader_id for digest_settings in batch]
    new_since = {s.reader_id: s.new_since(now) for s in batch}
    earliest = min(new_since.values())
    follows = list(
        Follow.objects.filter(reader_id__in=reader_ids).values(
            "reader_id", "section_id", "tag_id", "region_id", "source_id"
        )
    )
    candidates = _candidates(follows, since=earliest, now=now)
    if not candidates.stories:
        return []
    already_sent = defaultdict(set)
    for reader_id, story_id in DigestedStory.objects.filter(
        reader_id__in=reader_ids, story__published_at__gt=earliest
    ).values_list("reader_id", "story_id"):
        already_sent[reader_id].add(story_id)
    addresses = {}
    for user_id, email, username in (
        EmailAddress.objects.filter(user_id__in=reader_ids, verified=True)
        .order_by("user_id", "-primary", "pk")
        .values_list("user_id", "email", "user__username")
    ):
        addresses.setdefault(user_id, (email, username))  # the primary address first, else the oldest

    topics_of = defaultdict(set)
    for follow in follows:
        kind = next(k for k in ("section", "tag", "region", "source") if follow[f"{k}_id"] is not None)
        topics_of[follow["reader_id"]].add((kind, follow[f"{kind}_id"]))

    digests = []
    for reader_id in reader_ids:
        if reader_id not in addresses:
            continue
        ranks = set()
        for topic in topics_of[reader_id]:
            ranks.update(candidates.by_topic.get(topic, ()))
        since, sent = new_since[reader_id], already_sent[reader_id]
        picked = []
        for rank in sorted(ranks):
            story = candidates.stories[rank]
            if story.published_at > since and story.pk not in sent:
                picked.append(story)
                if len(picked) == settings.DIGEST_STORIES:
                    break
        if picked:
            address, username = addresses[reader_id]
            digests.append(Digest(reader_id, username, address, picked))
    return digests


def digest_message(digest: Digest, *, base: str, connection=None) -> EmailMultiAlternatives:
    """The mail of one digest, with the one-click unsubscribe headers of RFC 8058; links start with `base`."""
    unsubscribe_path = reverse(
        "follows:digest_unsubscribe", kwargs={"token": unsubscribe_token(reader_id=digest.reader_id)}
    )
    unsubscribe_url = base + unsubscribe_path
    context = {
        "digest": digest,
        "stories": [(story, base + _story_path(story.slug)) for story in digest.stories],
        "following_url": base + reverse("follows:following"),
        "settings_url": base + reverse("follows:digest_settings"),
        "unsubscribe_url": unsubscribe_url,
        "site_name": settings.SITE_NAME,
    }
    count = len(digest.stories)
    subject = f"{settings.SITE_NAME}: {count} new stor{'y' if count == 1 else 'ies'} you follow"
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("follows/email/digest.txt", context),
        to=[digest.address],
        connection=connection,
        headers={"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )
    message.attach_alternative(render_to_string("follows/email/digest.html", context), "text/html")
    return message


# --- Sending ---------------------------------------------------------------------------------


@dataclass
class DigestRun:
    """What one run did, for the task's result and the log."""

    readers: int = 0
    sent: int = 0
    nothing_new: int = 0
    failed: int = 0


def _claim_batch(*, after_pk: int, now: datetime, batch_size: int) -> list[DigestSettings]:
    """Take the next due readers (by id, after `after_pk`) and move their next due time on."""
    with transaction.atomic():
        batch = list(
            DigestSettings.objects.due(now)
            .filter(pk__gt=after_pk)
            .select_for_update(skip_locked=True)
            .order_by("pk")[:batch_size]
        )
        for digest_settings in batch:
            digest_settings.claimed_due_at = digest_settings.next_due_at
            digest_settings.next_due_at = digest_settings.next_due_after(now)
        DigestSettings.objects.bulk_update(batch, ["next_due_at"])
    return batch


def _record(digests: list[Digest], *, now: datetime) -> None:
    """Record the batch's stories as sent before any mail goes: the unique key makes a repeat impossible."""
    with transaction.atomic():
        DigestedStory.objects.bulk_create(
            [DigestedStory(reader_id=d.reader_id, story_id=s.pk, sent_at=now) for d in digests for s in d.stories],
            batch_size=2000,
        )
        DigestSettings.objects.filter(reader_id__in=[d.reader_id for d in digests]).update(last_sent_at=now)


def _hand_back(digest: Digest, claimed: DigestSettings) -> None:
    """A mail that could not be sent: forget its stories and make the reader due again."""
    with transaction.atomic():
        DigestedStory.objects.filter(reader_id=digest.reader_id, story_id__in=[s.pk for s in digest.stories]).delete()
        DigestSettings.objects.filter(pk=claimed.pk).update(
            last_sent_at=claimed.last_sent_at, next_due_at=claimed.claimed_due_at
        )


def send_due_digests(*, now: datetime | None = None, batch_size: int = DIGEST_BATCH_READERS) -> DigestRun:
    """Mail every due reader their digest, batch by batch. Safe to run again at any time."""
    now = now or timezone.now()
    run = DigestRun()
    after_pk = 0
    connection = get_connection()
    base = base_url()
    try:
        while batch := _claim_batch(after_pk=after_pk, now=now, batch_size=batch_size):
            after_pk = batch[-1].pk
            run.readers += len(batch)
            digests = build_digests(batch, now=now)
            run.nothing_new += len(batch) - len(digests)
            _record(digests, now=now)
            claimed = {s.reader_id: s for s in batch}
            for digest in digests:
                try:
                    connection.send_messages([digest_message(digest, base=base, connection=connection)])
                except (smtplib.SMTPException, OSError):
                    logger.exception(
                        "Could not mail a digest; the next run tries again.", extra={"user_id": digest.reader_id}
                    )
                    _hand_back(digest, claimed[digest.reader_id])
                    run.failed += 1
                else:
                    run.sent += 1
    finally:
        connection.close()
    logger.info(
        "Digests: %s readers due, %s mailed, %s with nothing new, %s failed.",
        run.readers,
        run.sent,
        run.nothing_new,
        run.failed,
    )
    return run
