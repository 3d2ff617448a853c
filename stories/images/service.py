"""Choosing, replacing and removing a story's hero image.

``choose_story_image`` runs after labelling (the provider search uses the labels). It takes the
source's own picture when the source allows it, else searches an image provider once per story (tags
first, then the section) and keeps the results as candidates; it downloads a candidate through the
safe fetcher, checks it by decoding it and stores resized copies, then points the story at our copies.
Whatever goes wrong ends with a reason on the story's ``StoryImage`` and the story without a picture:
nothing here raises for bad pictures or a failing provider. A moderator's choice (``replace_story_image``,
``remove_story_image``) locks the story's picture against later runs, so relabelling and re-importing
keep it.
"""

import hashlib
import logging
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from newsreader import metrics
from stories.importing import fetch
from stories.models import Story

from . import check, providers, variants
from .models import SOURCE_IMAGES_KEPT, SOURCE_PROVIDER, ImageCandidate, StoryImage, delete_stored_files

logger = logging.getLogger(__name__)

STORY_IMAGE_FIELDS = (
    "image_url",
    "image_width",
    "image_height",
    "image_srcset",
    "image_alt",
    "image_credit",
    "image_credit_url",
    "image_provider",
    "image_provider_url",
)
TAGS_IN_QUERY = 3
IMAGE_ACCEPT = "image/webp,image/jpeg,image/png,image/gif;q=0.9,*/*;q=0.1"


class ImageChoiceError(Exception):
    """A moderator's request could not be carried out; ``str(error)`` says why."""


class CandidateFailed(Exception):
    """This candidate cannot be shown; ``transient`` says a later try may succeed."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


# --- The pipeline step -----------------------------------------------------------------------


def choose_story_image(*, story_id: int) -> StoryImage | None:
    """Give the story a picture if it has none, or record why it cannot have one. Returns the story's
    image record (None if the story is gone). ``record.retry_at`` is set when a later run may succeed."""
    story = Story.objects.select_related("source", "section").filter(pk=story_id).first()
    if story is None:
        return None
    record, _ = StoryImage.objects.get_or_create(story=story)
    if record.moderator_locked:
        logger.info("Story %s keeps the picture a moderator chose.", story_id)
        return record
    if not record.acquire(seconds=_lock_seconds()):
        logger.info("Story %s is already getting its picture; skipping.", story_id)
        return record
    try:
        return _choose(story, record)
    finally:
        record.release()
        record.working_until = None


def _choose(story: Story, record: StoryImage) -> StoryImage:
    if story.image_candidates.filter(is_chosen=True).exists():
        return record
    failures: list[str] = []
    if story.source.may_show_images:
        for candidate in story.image_candidates.filter(provider=SOURCE_PROVIDER).usable()[:SOURCE_IMAGES_KEPT]:
            if _prepared(candidate, failures):
                return _show(story, record, candidate)

    available = providers.configured_providers()
    if not available:
        logger.info(
            "No image provider is configured (PEXELS_API_KEY is not set); story %s is published without a picture.",
            story.pk,
        )
        reason = "No image provider is configured (set PEXELS_API_KEY), so no stock photo was searched for."
        state = StoryImage.State.NONE if failures else StoryImage.State.SKIPPED
        return _without(record, state, _joined([*failures, reason]))

    if record.searched_at is None:
        try:
            _search(story, record, available)
        except providers.ProviderError as error:
            retry = (error.retry_after or settings.IMAGE_RATE_LIMIT_BACKOFF_SECONDS) if error.transient else None
            return _without(record, StoryImage.State.NONE, _joined([*failures, str(error)]), retry_after=retry)

    candidates = _provider_candidates(story)
    if not candidates:
        reason = _no_candidates_reason(story, record)
        return _without(record, StoryImage.State.NONE, _joined([*failures, reason]))
    transient = False
    for candidate in candidates[: settings.IMAGE_DOWNLOAD_ATTEMPTS]:
        if _prepared(candidate, failures):
            return _show(story, record, candidate)
        transient = transient or candidate.failure_transient
    retry = settings.IMAGE_RATE_LIMIT_BACKOFF_SECONDS if transient else None
    return _without(record, StoryImage.State.NONE, _joined(failures), retry_after=retry)


def retry_delay(record: StoryImage | None) -> int | None:
    """Seconds until the story's image step is worth running again (the provider was rate-limited or
    down), or None. Never more than IMAGE_RATE_LIMIT_BACKOFF_SECONDS, so a retry waiting in the broker
    stays well inside its visibility timeout; a retry that comes too early finds the pause in the cache
    and asks nothing."""
    if record is None or record.retry_at is None:
        return None
    seconds = (record.retry_at - timezone.now()).total_seconds()
    return int(min(max(seconds, 30), settings.IMAGE_RATE_LIMIT_BACKOFF_SECONDS))


def search_queries(story: Story) -> list[str]:
    """What to search the provider for: the story's tags first, then its section."""
    tags = [tag.name for tag in story.tags.all()[:TAGS_IN_QUERY]]
    queries = [" ".join(tags)] if tags else []
    if story.section_id:
        queries.append(story.section.name)
    return list(dict.fromkeys(query.strip()[:300] for query in queries if query.strip()))


def _search(story: Story, record: StoryImage, available: Sequence[providers.ImageProvider]) -> None:
    """Ask the providers in turn until one answers; keep its results as the story's candidates. A query
    that finds nothing is followed by the next one (tags, then section). Raises the last ProviderError
    when no provider could answer."""
    queries = search_queries(story)
    if not queries:
        _searched(record, provider="", query="")
        return
    last_error: providers.ProviderError | None = None
    for provider in available:
        try:
            for query in queries:
                provider.check_not_paused()  # so only requests really sent are counted
                record.search_requests += 1
                photos = provider.search(query=query, per_page=settings.IMAGE_SEARCH_RESULTS)
                if photos:
                    _keep_candidates(story, photos, query=query)
                    _searched(record, provider=provider.name, query=query)
                    return
            _searched(record, provider=provider.name, query=" / ".join(queries))
            return
        except providers.ProviderError as error:
            logger.warning("Image search for story %s at %s failed: %s", story.pk, provider.label, error)
            metrics.IMAGE_FAILURES.labels(stage="search").inc()
            last_error = error
        finally:
            StoryImage.objects.filter(pk=record.pk).update(search_requests=record.search_requests)
    raise last_error or providers.ProviderError("No image provider answered.")


def _searched(record: StoryImage, *, provider: str, query: str) -> None:
    record.searched_at = timezone.now()
    record.search_provider = provider
    record.search_query = query[:300]
    record.save(update_fields=["searched_at", "search_provider", "search_query", "search_requests", "updated_at"])


def _keep_candidates(story: Story, photos: Sequence[providers.Photo], *, query: str) -> None:
    ranks = story.image_candidates.exclude(provider=SOURCE_PROVIDER).order_by("-rank").values_list("rank", flat=True)
    last_rank = ranks.first()
    start = 0 if last_rank is None else last_rank + 1
    for offset, photo in enumerate(photos):
        ImageCandidate.objects.get_or_create(
            story=story,
            provider=photo.provider,
            photo_id=photo.photo_id,
            defaults={
                "rank": start + offset,
                "search_query": query[:300],
                "download_url": photo.download_url,
                "page_url": photo.page_url,
                "photographer": photo.photographer,
                "photographer_url": photo.photographer_url,
                "alt": photo.alt,
                "width": photo.width,
                "height": photo.height,
            },
        )


def _provider_candidates(story: Story) -> list[ImageCandidate]:
    """The provider's photos for this story, best first, leaving out broken ones and those another
    story shows that were chosen in the last IMAGE_REUSE_DAYS days."""
    candidates = list(story.image_candidates.exclude(provider=SOURCE_PROVIDER).usable().order_by("rank", "pk"))
    since = timezone.now() - timedelta(days=settings.IMAGE_REUSE_DAYS)
    used = set(
        ImageCandidate.objects.chosen_elsewhere_since(story_id=story.pk, since=since)
        .filter(photo_id__in=[candidate.photo_id for candidate in candidates])
        .values_list("provider", "photo_id")
    )
    return [candidate for candidate in candidates if (candidate.provider, candidate.photo_id) not in used]


def _no_candidates_reason(story: Story, record: StoryImage) -> str:
    if not record.search_query:
        return "The story has no tags or section to search a picture by."
    found = story.image_candidates.exclude(provider=SOURCE_PROVIDER).count()
    label = providers.provider_label(record.search_provider)
    if not found:
        return f"{label} found no photo for “{record.search_query}”."
    return (
        f"Each of the {found} photos {label} found for “{record.search_query}” is broken or shown by another "
        f"story in the last {settings.IMAGE_REUSE_DAYS} days."
    )


# --- Downloading, checking and storing one candidate -----------------------------------------


def _prepared(candidate: ImageCandidate, failures: list[str]) -> bool:
    """Make our stored copies of `candidate`; on failure record why on it and in `failures`."""
    try:
        prepare_candidate(candidate)
    except CandidateFailed as error:
        candidate.failure = str(error)
        candidate.failure_transient = error.transient
        candidate.failed_at = timezone.now()
        candidate.save(update_fields=["failure", "failure_transient", "failed_at"])
        failures.append(f"{_candidate_label(candidate)}: {error}")
        logger.info("Picture %s for story %s not used: %s", candidate, candidate.story_id, error)
        metrics.IMAGE_FAILURES.labels(stage="candidate").inc()
        return False
    return True


def prepare_candidate(candidate: ImageCandidate) -> None:
    """Download, check and store resized copies of the candidate (once). Raises CandidateFailed."""
    if candidate.variants:
        return
    try:
        response = fetch.fetch(
            candidate.download_url,
            headers={"Accept": IMAGE_ACCEPT},
            max_bytes=settings.IMAGE_MAX_BYTES,
            deadline=settings.IMAGE_FETCH_DEADLINE_SECONDS,
        )
    except fetch.FetchError as error:
        raise CandidateFailed(f"the download failed: {error}", transient=error.transient) from error
    try:
        checked = check.check_image(
            response.body,
            max_pixels=settings.IMAGE_MAX_PIXELS,
            min_width=settings.IMAGE_MIN_WIDTH,
            needed_width=max(settings.IMAGE_VARIANT_WIDTHS),
        )
    except check.ImageRejected as error:
        raise CandidateFailed(str(error)) from error
    digest = hashlib.sha256(response.body).hexdigest()[:12]
    prefix = f"{settings.IMAGE_STORAGE_PREFIX}/{candidate.story_id}/{candidate.pk}-{digest}"
    try:
        stored = variants.store_variants(checked=checked, prefix=prefix, widths=settings.IMAGE_VARIANT_WIDTHS)
    except variants.VariantStoreError as error:
        raise CandidateFailed(str(error), transient=True) from error
    candidate.variants = stored.as_json()
    candidate.failure, candidate.failure_transient, candidate.failed_at = "", False, None
    try:
        candidate.save(update_fields=["variants", "failure", "failure_transient", "failed_at"])
    except Exception:
        variants.delete_variants(stored.variants)
        raise


# --- What the story shows --------------------------------------------------------------------


def _show(story: Story, record: StoryImage, candidate: ImageCandidate) -> StoryImage:
    """Make `candidate` the story's picture: our stored copies, with its credit and alt text."""
    stored = variants.StoredImage.from_json(candidate.variants)
    fallback = stored.fallback
    with transaction.atomic():
        previous = list(story.image_candidates.filter(is_chosen=True).exclude(pk=candidate.pk))
        ImageCandidate.objects.filter(pk__in=[other.pk for other in previous]).update(is_chosen=False, variants=[])
        candidate.is_chosen, candidate.chosen_at = True, timezone.now()
        candidate.save(update_fields=["is_chosen", "chosen_at"])
        story.image_url = default_storage.url(fallback.name)
        story.image_width, story.image_height = fallback.width, fallback.height
        story.image_srcset = stored.srcset()
        story.image_alt = candidate.alt
        if candidate.from_source:
            story.image_credit, story.image_credit_url = candidate.photographer, ""
            story.image_provider = story.source.name[:100]
            story.image_provider_url = providers.web_url(story.source.homepage_url)
        else:
            story.image_credit, story.image_credit_url = candidate.photographer, candidate.photographer_url
            story.image_provider = providers.provider_label(candidate.provider)[:100]
            story.image_provider_url = candidate.page_url
        story.save(update_fields=[*STORY_IMAGE_FIELDS, "updated_at"])
        record.state, record.reason, record.retry_at = StoryImage.State.CHOSEN, "", None
        record.save(update_fields=["state", "reason", "retry_at", "updated_at"])
        names = [name for other in previous for name in other.variant_names()]
        transaction.on_commit(lambda: delete_stored_files(names))
    logger.info("Story %s shows %s.", story.pk, candidate)
    return record


def _without(
    record: StoryImage, state: str, reason: str, *, retry_after: int | None = None, clear_story: bool = False
) -> StoryImage:
    record.state, record.reason = state, reason
    record.retry_at = timezone.now() + timedelta(seconds=retry_after) if retry_after else None
    record.save(update_fields=["state", "reason", "retry_at", "updated_at"])
    if clear_story:
        story = record.story
        for name in STORY_IMAGE_FIELDS:
            setattr(story, name, None if name in ("image_width", "image_height") else "")
        story.save(update_fields=[*STORY_IMAGE_FIELDS, "updated_at"])
    logger.info("Story %s has no picture: %s", record.story_id, reason)
    return record


# --- A moderator's choices -------------------------------------------------------------------


def replace_story_image(*, story: Story, candidate: ImageCandidate, moderator=None) -> StoryImage:
    """Show `candidate` on `story` from now on, whatever later runs would choose. Raises ImageChoiceError
    when the picture cannot be downloaded or is not a picture we accept."""
    if candidate.story_id != story.pk:
        raise ImageChoiceError(f"{candidate} was not found for this story.")
    record, _ = StoryImage.objects.get_or_create(story=story)
    failures: list[str] = []
    if not _prepared(candidate, failures):
        raise ImageChoiceError(f"That picture cannot be used: {failures[0]}")
    _show(story, record, candidate)
    _lock(record, moderator)
    return record


def remove_story_image(*, story: Story, moderator=None) -> StoryImage:
    """Show no picture on `story`, whatever later runs would choose."""
    record, _ = StoryImage.objects.get_or_create(story=story)
    with transaction.atomic():
        chosen = list(story.image_candidates.filter(is_chosen=True))
        ImageCandidate.objects.filter(pk__in=[other.pk for other in chosen]).update(is_chosen=False, variants=[])
        who = f" by {moderator}" if moderator else ""
        _without(record, StoryImage.State.REMOVED, f"Removed{who}.", clear_story=True)
        _lock(record, moderator)
        names = [name for other in chosen for name in other.variant_names()]
        transaction.on_commit(lambda: delete_stored_files(names))
    return record


def search_again(*, story: Story, moderator=None) -> int:
    """A moderator asks for new candidates: search the provider again (this costs a request) and add
    what it finds. The story's picture does not change. Returns how many new candidates were found."""
    available = providers.configured_providers()
    if not available:
        raise ImageChoiceError("No image provider is configured (set PEXELS_API_KEY).")
    record, _ = StoryImage.objects.get_or_create(story=story)
    before = story.image_candidates.count()
    try:
        _search_next_page(story, record, available)
    except providers.ProviderError as error:
        raise ImageChoiceError(str(error)) from error
    logger.info("%s asked for new picture candidates for story %s.", moderator or "Someone", story.pk)
    return story.image_candidates.count() - before


def _search_next_page(story: Story, record: StoryImage, available: Sequence[providers.ImageProvider]) -> None:
    """The next page of the query that found the story's candidates, or a first search if none did."""
    provider = next((p for p in available if p.name == record.search_provider), None)
    known = story.image_candidates.filter(provider=record.search_provider, search_query=record.search_query).count()
    if provider is None or not known:
        _search(story, record, available)
        return
    provider.check_not_paused()
    record.search_requests += 1
    try:
        photos = provider.search(
            query=record.search_query,
            per_page=settings.IMAGE_SEARCH_RESULTS,
            page=known // settings.IMAGE_SEARCH_RESULTS + 1,
        )
    finally:
        StoryImage.objects.filter(pk=record.pk).update(search_requests=record.search_requests)
    _keep_candidates(story, photos, query=record.search_query)


def release_story_image(*, story: Story) -> StoryImage:
    """Let the pipeline choose this story's picture again (the moderator's lock is lifted)."""
    record, _ = StoryImage.objects.get_or_create(story=story)
    record.moderator_locked, record.decided_by, record.decided_at = False, None, None
    if record.state == StoryImage.State.REMOVED:
        record.state, record.reason = StoryImage.State.PENDING, ""
    record.save(update_fields=["moderator_locked", "decided_by", "decided_at", "state", "reason", "updated_at"])
    return record


def _lock(record: StoryImage, moderator) -> None:
    record.moderator_locked = True
    record.decided_by = moderator if getattr(moderator, "pk", None) else None
    record.decided_at = timezone.now()
    record.save(update_fields=["moderator_locked", "decided_by", "decided_at", "updated_at"])


def _candidate_label(candidate: ImageCandidate) -> str:
    if candidate.from_source:
        return f"the source's picture {candidate.download_url[:200]}"
    return f"{providers.provider_label(candidate.provider)} photo {candidate.photo_id}"


def _joined(reasons: Sequence[str]) -> str:
    return " ".join(reason if reason.endswith(".") else f"{reason}." for reason in reasons)


def _lock_seconds() -> int:
    """Long enough for a run's slowest path: two searches per provider and every download, with room."""
    searches = 2 * len(settings.IMAGE_PROVIDERS) * settings.IMAGE_API_DEADLINE_SECONDS
    downloads = (settings.IMAGE_DOWNLOAD_ATTEMPTS + SOURCE_IMAGES_KEPT) * settings.IMAGE_FETCH_DEADLINE_SECONDS
    return int(searches + downloads + 60)
