"""What a reader follows (sections, tags, regions, sources), the stories they saved for later, their
digest settings and the stories their digests have already carried."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from stories.models import Region, Section, Source, Story, Tag

# The four things a reader can follow, each a foreign key of `Follow` named after its kind.
FOLLOWABLE: dict[str, type[models.Model]] = {"section": Section, "tag": Tag, "region": Region, "source": Source}


class FollowQuerySet(models.QuerySet):
    def of(self, reader) -> "FollowQuerySet":
        return self.filter(reader=reader)

    def with_targets(self) -> "FollowQuerySet":
        return self.select_related("section", "tag", "region__parent", "source")


class Follow(models.Model):
    """A reader follows one section, tag, region or source: exactly one of the four keys is set, and a
    reader follows each thing once."""

    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="follows")
    section = models.ForeignKey(Section, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    region = models.ForeignKey(Region, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FollowQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(section__isnull=False, tag__isnull=True, region__isnull=True, source__isnull=True)
                    | Q(section__isnull=True, tag__isnull=False, region__isnull=True, source__isnull=True)
                    | Q(section__isnull=True, tag__isnull=True, region__isnull=False, source__isnull=True)
                    | Q(section__isnull=True, tag__isnull=True, region__isnull=True, source__isnull=False)
                ),
                name="follow_exactly_one_target",
            ),
            *(
                models.UniqueConstraint(
                    fields=["reader", kind], condition=Q(**{f"{kind}__isnull": False}), name=f"follow_one_{kind}"
                )
                for kind in FOLLOWABLE
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reader} follows {self.kind} {self.target}"

    @property
    def kind(self) -> str:
        return next(kind for kind in FOLLOWABLE if getattr(self, f"{kind}_id") is not None)

    @property
    def target(self) -> models.Model:
        return getattr(self, self.kind)


class SavedStory(models.Model):
    """A story a reader saved to read later."""

    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_stories")
    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="+")
    saved_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-saved_at", "-pk"]
        verbose_name_plural = "saved stories"
        constraints = [models.UniqueConstraint(fields=["reader", "story"], name="savedstory_once_per_reader")]

    def __str__(self) -> str:
        return f"{self.reader} saved {self.story_id}"


def validate_time_zone(value: str) -> None:
    if value not in available_timezones():
        raise ValidationError(f"{value!r} is not a time zone we know; choose one such as Europe/Oslo.")


class DigestSettingsQuerySet(models.QuerySet):
    def due(self, now: datetime | None = None) -> "DigestSettingsQuerySet":
        """Readers whose digest time has come (including any an hourly run missed)."""
        return self.exclude(frequency=DigestSettings.Frequency.OFF).filter(next_due_at__lte=now or timezone.now())


class DigestSettings(models.Model):
    """How often a reader gets the digest of what they follow, at which local hour, and when it is due next.

    Weekly digests go out on Mondays. `next_due_at` is kept in UTC so the hourly run finds due readers
    with one indexed query, whatever their time zones.
    """

    class Frequency(models.TextChoices):
        OFF = "off", "Off"
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly (Mondays)"

    reader = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digest_settings")
    frequency = models.CharField(max_length=6, choices=Frequency.choices, default=Frequency.OFF)
    hour = models.PositiveSmallIntegerField(
        default=7, validators=[MaxValueValidator(23)], help_text="Local hour, 0-23."
    )
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    next_due_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DigestSettingsQuerySet.as_manager()

    class Meta:
        verbose_name = verbose_name_plural = "digest settings"
        indexes = [models.Index(fields=["next_due_at"], condition=~Q(frequency="off"), name="digest_due_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(hour__gte=0, hour__lte=23), name="digest_hour_of_day"),
            models.CheckConstraint(condition=Q(frequency__in=["off", "daily", "weekly"]), name="digest_frequency"),
        ]

    def __str__(self) -> str:
        return f"{self.get_frequency_display()} digest for {self.reader}"

    @property
    def period(self) -> timedelta:
        return timedelta(days=7 if self.frequency == self.Frequency.WEEKLY else 1)

    def next_due_after(self, moment: datetime) -> datetime | None:
        """The first time after `moment` when this reader's digest is due: their hour, in their time zone
        (on a Monday for weekly digests); None when digests are off."""
        if self.frequency == self.Frequency.OFF:
            return None
        local = moment.astimezone(ZoneInfo(self.time_zone))
        due = local.replace(hour=self.hour, minute=0, second=0, microsecond=0)
        while due <= local or (self.frequency == self.Frequency.WEEKLY and due.weekday() != 0):
            due = (due + timedelta(days=1)).replace(hour=self.hour)
        return due.astimezone(ZoneInfo("UTC"))

    def new_since(self, now: datetime) -> datetime:
        """Stories published after this moment are new for the next digest: since the last one, and never
        further back than one period."""
        window_start = now - self.period
        return max(self.last_sent_at, window_start) if self.last_sent_at else window_start


class DigestedStory(models.Model):
    """A story one of a reader's digests carried; no later digest carries it again."""

    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="+")
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-sent_at", "-pk"]
        verbose_name_plural = "digested stories"
        constraints = [models.UniqueConstraint(fields=["reader", "story"], name="digestedstory_once_per_reader")]

    def __str__(self) -> str:
        return f"Story {self.story_id} sent to {self.reader_id}"
