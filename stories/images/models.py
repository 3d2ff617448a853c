"""What the image pipeline knows about each story: the pictures found for it and the one chosen."""

import hashlib
import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

logger = logging.getLogger(__name__)

SOURCE_PROVIDER = "source"
SOURCE_IMAGES_KEPT = 3


class OfferedImage(Protocol):
    """A picture a source offers (the feed parser's ParsedImage has this shape)."""

    url: str
    credit: str
    alt: str
    width: int | None
    height: int | None


def web_url(value: object) -> str:
    """`value` if it is an absolute http(s) URL that fits our fields, else "" (never javascript: and the like)."""
    if not isinstance(value, str):
        return ""
    value = value.strip()
    if len(value) > 2000:
        return ""
    try:
        parts = urlsplit(value)
    except ValueError:
        return ""
    return value if parts.scheme in ("http", "https") and parts.netloc else ""


class StoryImage(models.Model):
    """The pipeline's record for one story: whether it has a picture, why not, what the search cost,
    and whether a moderator's choice pins it."""

    class State(models.TextChoices):
        PENDING = "pending", "Not chosen yet"
        CHOSEN = "chosen", "Chosen"
        NONE = "none", "No usable picture"
        SKIPPED = "skipped", "Skipped (no image provider configured)"
        REMOVED = "removed", "Removed by a moderator"

    story = models.OneToOneField("stories.Story", on_delete=models.CASCADE, related_name="image_record")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    reason = models.TextField(blank=True, help_text="Why the story has no picture, or what went wrong on the way.")
    retry_at = models.DateTimeField(
        null=True, blank=True, help_text="When trying again may succeed (the provider was rate-limited or down)."
    )
    moderator_locked = models.BooleanField(
        "chosen by a moderator",
        default=False,
        help_text="A moderator chose or removed the picture; relabelling and re-importing keep that choice.",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    # The provider search, kept so a story costs one search unless a moderator asks for another
    searched_at = models.DateTimeField(null=True, blank=True)
    search_provider = models.CharField(max_length=50, blank=True)
    search_query = models.CharField(max_length=300, blank=True)
    search_requests = models.PositiveIntegerField(default=0, help_text="Provider API calls spent on this story.")

    working_until = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "story image"

    def __str__(self) -> str:
        return f"Image of story {self.story_id}: {self.get_state_display()}"

    def acquire(self, *, seconds: int) -> bool:
        """Take this story's image lock, so two workers never choose its picture at once."""
        now = timezone.now()
        return bool(
            StoryImage.objects.filter(pk=self.pk)
            .filter(Q(working_until__isnull=True) | Q(working_until__lt=now))
            .update(working_until=now + timedelta(seconds=seconds))
        )

    def release(self) -> None:
        StoryImage.objects.filter(pk=self.pk).update(working_until=None)


class ImageCandidateQuerySet(models.QuerySet):
    def chosen_elsewhere_since(self, *, story_id: int, since) -> "ImageCandidateQuerySet":
        """Pictures another story shows, chosen since `since`."""
        return self.filter(is_chosen=True, chosen_at__gte=since).exclude(story_id=story_id)

    def usable(self) -> "ImageCandidateQuerySet":
        """Candidates not yet known to be broken (a transient failure may pass, so those stay usable)."""
        return self.filter(Q(failure="") | Q(failure_transient=True))

    def remember_source_images(self, *, source, images_by_story: Mapping[int, Iterable[OfferedImage]]) -> int:
        """Keep the pictures a feed offers for its new stories (media:content, media:thumbnail, enclosures)
        as candidates, if the source allows its pictures to be shown. Nothing is downloaded or shown yet.
        Returns how many were kept."""
        if not source.may_show_images:
            return 0
        candidates = [
            candidate
            for story_id, images in images_by_story.items()
            for rank, image in enumerate(list(images)[:SOURCE_IMAGES_KEPT])
            if (
                candidate := _source_candidate(
                    story_id, rank, image.url, image.credit, image.alt, image.width, image.height
                )
            )
        ]
        self.bulk_create(candidates, ignore_conflicts=True)
        return len(candidates)

    def remember_source_image(self, *, story, url: str, alt: str = "", credit: str = "") -> "ImageCandidate | None":
        """Keep one more picture the source offers for `story` (its page's og:image, say), if allowed."""
        if not story.source.may_show_images:
            return None
        rank = self.filter(story=story, provider=SOURCE_PROVIDER).count()
        candidate = _source_candidate(story.pk, rank, url, credit, alt, None, None)
        if candidate is None or rank >= SOURCE_IMAGES_KEPT:
            return None
        self.bulk_create([candidate], ignore_conflicts=True)
        return candidate


class ImageCandidate(models.Model):
    """A picture found for a story: the source's own (from its feed or page) or a provider's search
    result, with the credit the provider asks for and, once downloaded, our stored variants."""

    story = models.ForeignKey("stories.Story", on_delete=models.CASCADE, related_name="image_candidates")
    provider = models.CharField(max_length=50, help_text='"source" for the source\'s own images.')
    photo_id = models.CharField("photo id", max_length=200)
    rank = models.PositiveSmallIntegerField(default=0, help_text="Position in the feed or in the search results.")
    search_query = models.CharField(max_length=300, blank=True)
    download_url = models.URLField("download URL", max_length=2000)
    page_url = models.URLField("provider's page for the photo", max_length=2000, blank=True)
    photographer = models.CharField(max_length=200, blank=True)
    photographer_url = models.URLField("photographer's page", max_length=2000, blank=True)
    alt = models.CharField("alt text", max_length=500, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)

    is_chosen = models.BooleanField("chosen", default=False)
    chosen_at = models.DateTimeField(null=True, blank=True)
    variants = models.JSONField(default=list, blank=True, help_text="Our stored copies: name, width, height, format.")
    failure = models.TextField(blank=True, help_text="Why this picture could not be used.")
    failure_transient = models.BooleanField(default=False)
    failed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ImageCandidateQuerySet.as_manager()

    class Meta:
        ordering = ["story", "rank", "pk"]
        indexes = [models.Index(fields=["provider", "photo_id"], name="imagecandidate_photo_idx")]
        constraints = [
            models.UniqueConstraint(fields=["story", "provider", "photo_id"], name="imagecandidate_unique_photo"),
            models.UniqueConstraint(
                fields=["story"], condition=Q(is_chosen=True), name="imagecandidate_one_chosen_per_story"
            ),
        ]

    def __str__(self) -> str:
        by = f" by {self.photographer}" if self.photographer else ""
        return f"{self.provider} photo {self.photo_id}{by}"

    @property
    def from_source(self) -> bool:
        return self.provider == SOURCE_PROVIDER

    def variant_names(self) -> list[str]:
        return [variant["name"] for variant in self.variants if variant.get("name")]


def _source_candidate(
    story_id: int, rank: int, url: str, credit: str, alt: str, width: int | None, height: int | None
) -> ImageCandidate | None:
    url = web_url(url)
    if not url:
        return None
    return ImageCandidate(
        story_id=story_id,
        provider=SOURCE_PROVIDER,
        photo_id=hashlib.sha256(url.encode()).hexdigest()[:40],
        download_url=url,
        photographer=" ".join((credit or "").split())[:200],
        alt=" ".join((alt or "").split())[:500],
        width=width if width and width > 0 else None,
        height=height if height and height > 0 else None,
        rank=rank,
    )


def delete_stored_files(names: list[str]) -> None:
    """Delete our stored copies; a file already gone is not an error."""
    for name in names:
        try:
            default_storage.delete(name)
        except OSError as error:
            logger.warning("Could not delete stored image %s: %s", name, error)


@receiver(post_delete, sender=ImageCandidate)
def delete_candidate_files(sender, instance: ImageCandidate, **kwargs) -> None:
    """A deleted candidate (or story) leaves no files behind, once the deletion is committed."""
    names = instance.variant_names()
    if names:
        transaction.on_commit(lambda: delete_stored_files(names))
