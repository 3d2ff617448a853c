"""Stories and what they are filed under: sources, sections, tags and regions."""

import functools
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector, SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connection, models
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from newsreader.database import planned_once
from newsreader.sanitize import html_to_text, sanitize_html

# The image models live with the image step but belong to this app: importing them here registers them.
from .images.models import ImageCandidate, StoryImage  # noqa: F401

WORDS_PER_MINUTE = 230


def reading_minutes(text: str) -> int:
    """Minutes an average reader needs for `text`, at least one: the one formula pages and labellers use."""
    return max(1, round(len(text.split()) / WORDS_PER_MINUTE))


# Longest story body, in characters of HTML before sanitising: a very long article, and a bound on the
# sanitiser's time (over a second per 100,000 characters) and on the size of a story page.
STORY_BODY_MAX_CHARS = 200_000


# A page links to dozens of stories, sections and tags; reverse() costs more than the rest of such a link,
# so these paths are reversed once per process.
@functools.cache
def list_path() -> str:
    """The story list's path."""
    return reverse("stories:list")


@functools.cache
def _story_path() -> str:
    """A story page's path, with `{}` for its slug."""
    return reverse("stories:detail", kwargs={"slug": "story-slug"}).replace("story-slug", "{}")


def unique_slug(model: type[models.Model], text: str, *, exclude_pk: int | None = None, max_length: int = 200) -> str:
    """A slug of `text` not yet used by `model`, suffixed -2, -3… when it is."""
    base = slugify(text)[:max_length].strip("-") or "item"
    candidate, suffix = base, 2
    existing = model._default_manager.filter(slug__startswith=base)
    if exclude_pk is not None:
        existing = existing.exclude(pk=exclude_pk)
    taken = set(existing.values_list("slug", flat=True))
    while candidate in taken:
        candidate = f"{base[: max_length - len(str(suffix)) - 1]}-{suffix}"
        suffix += 1
    return candidate


class SourceQuerySet(models.QuerySet):
    def due(self, now=None) -> "SourceQuerySet":
        """Active sources whose next fetch time has come, that no worker is importing, and that were not
        queued a moment ago (a queued import that never ran is due again after PIPELINE_RETRY_SECONDS)."""
        now = now or timezone.now()
        queued_long_ago = now - timedelta(seconds=settings.PIPELINE_RETRY_SECONDS)
        return (
            self.filter(is_active=True, next_fetch_at__lte=now)
            .filter(Q(import_locked_until__isnull=True) | Q(import_locked_until__lt=now))
            .filter(Q(import_queued_at__isnull=True) | Q(import_queued_at__lt=queued_long_ago))
        )

    def lease_lapsed(self, now=None) -> "SourceQuerySet":
        """Sources no worker holds a live import lease on."""
        now = now or timezone.now()
        return self.filter(Q(import_locked_until__isnull=True) | Q(import_locked_until__lt=now))


class Source(models.Model):
    """A publisher whose feed we import stories from, with the health of its imports."""

    class PublishMode(models.TextChoices):
        IMMEDIATELY = "immediately", "Immediately (labels follow)"
        AFTER_LABELLING = "after_labelling", "After labelling"

    class KeyStrategy(models.TextChoices):
        GUID = "guid", "Entry GUID"
        URL = "url", "Normalised link"
        TITLE_DATE = "title_date", "Title and date"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    homepage_url = models.URLField("homepage", max_length=2000, blank=True)
    feed_url = models.URLField("feed URL", max_length=2000, unique=True)
    is_active = models.BooleanField("active", default=True)
    full_text = models.BooleanField(
        "extract full text", default=False, help_text="Fetch each linked page and extract its main text."
    )
    default_section = models.ForeignKey("Section", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    region_hint = models.ForeignKey("Region", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    attribution = models.CharField(max_length=200, blank=True, help_text="How stories credit this source.")
    licence_note = models.TextField(blank=True)
    publish_mode = models.CharField(max_length=20, choices=PublishMode.choices, default=PublishMode.IMMEDIATELY)
    may_show_images = models.BooleanField(
        "may show its own images", default=False, help_text="Only if this source allows its images to be shown."
    )
    fetch_interval_minutes = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(5), MaxValueValidator(24 * 60)]
    )

    # Conditional GET and change detection
    etag = models.CharField(max_length=500, blank=True, editable=False)
    last_modified = models.CharField(max_length=100, blank=True, editable=False)
    content_hash = models.CharField(max_length=64, blank=True, editable=False)
    key_strategy = models.CharField(max_length=12, choices=KeyStrategy.choices, default=KeyStrategy.GUID)
    min_interval_minutes = models.PositiveIntegerField(
        default=0, editable=False, help_text="The feed's own TTL, Cache-Control, Expires or Retry-After."
    )

    # Health
    last_fetched_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_status = models.PositiveSmallIntegerField("last HTTP status", null=True, blank=True, editable=False)
    consecutive_errors = models.PositiveIntegerField(default=0, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    next_fetch_at = models.DateTimeField(default=timezone.now, db_index=True)
    items_per_day = models.FloatField(default=0, editable=False)
    deactivated_reason = models.CharField(max_length=300, blank=True)
    import_locked_until = models.DateTimeField(
        "import lease until",
        null=True,
        blank=True,
        editable=False,
        help_text="A worker importing this source renews this lease while it works; a dead worker's lapses.",
    )
    import_queued_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="An import was asked for and has not run yet."
    )

    created_at = models.DateTimeField(auto_now_add=True)

    objects = SourceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"{list_path()}?source={self.slug}"


class ImportRunQuerySet(models.QuerySet):
    def running(self) -> "ImportRunQuerySet":
        return self.filter(outcome=ImportRun.Outcome.RUNNING)

    def interrupt(self, reason: str) -> int:
        """Close runs whose worker stopped before finishing them, saying why."""
        return self.running().update(outcome=ImportRun.Outcome.INTERRUPTED, finished_at=timezone.now(), error=reason)


class ImportRun(models.Model):
    """One attempt to import a source: what happened, and how long it took."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        IMPORTED = "imported", "Imported"
        NOT_MODIFIED = "not_modified", "Not modified"
        UNCHANGED = "unchanged", "Unchanged (same content)"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted (the worker stopped)"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="import_runs")
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.RUNNING)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    new_count = models.PositiveIntegerField("new", default=0)
    updated_count = models.PositiveIntegerField("updated", default=0)
    unchanged_count = models.PositiveIntegerField("unchanged", default=0)
    rejected_count = models.PositiveIntegerField("rejected", default=0)
    error = models.TextField(blank=True)

    objects = ImportRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [
            models.Index(fields=["source", "-started_at"], name="importrun_source_idx"),
            models.Index(fields=["outcome"], condition=Q(outcome="running"), name="importrun_running_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration(self):
        return self.finished_at - self.started_at if self.finished_at else None


class HostSlot(models.Model):
    """One of IMPORT_MAX_PARALLEL_PER_HOST slots for fetching feeds from a host, held as a lease: the worker
    holding it renews it while it imports, and a dead worker's slot lapses within a lease."""

    host = models.CharField(max_length=255)
    number = models.PositiveSmallIntegerField()
    holder = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["host", "number"], name="hostslot_unique_number_per_host")]

    def __str__(self) -> str:
        return f"{self.host} slot {self.number}"


class Heartbeat(models.Model):
    """The last sign of life of a Celery worker or of beat, for the admin's system status."""

    class Kind(models.TextChoices):
        WORKER = "worker", "Worker"
        BEAT = "beat", "Beat"

    name = models.CharField(max_length=200, unique=True, help_text="The worker's host name, or 'beat'.")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    seen_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.name}"


def section_menu_rows() -> tuple[tuple[str, str], ...]:
    """Each section's name and slug in the menu's order (Section's own): written out, as the list's query
    is, since building it through the ORM cost more than running it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, slug FROM stories_section ORDER BY position, name")
        return tuple(cursor.fetchall())


class Section(models.Model):
    """A top-level heading of the site (Technology, Sport…), mapped to an IPTC Media Topic."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    iptc_code = models.CharField(
        "IPTC Media Topic code", max_length=20, blank=True, help_text="For example medtop:13000000."
    )
    description = models.TextField(blank=True)
    position = models.PositiveSmallIntegerField(default=0, help_text="Lower numbers come first.")

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"{list_path()}?section={self.slug}"


class Tag(models.Model):
    """A named entity or key phrase a story is about."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"{list_path()}?tag={self.slug}"


class Region(models.Model):
    """A place a story is about: a continent, or a country within its continent."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["parent", "name"], name="region_unique_name_in_parent")]

    def __str__(self) -> str:
        return f"{self.parent.name} / {self.name}" if self.parent_id else self.name

    def get_absolute_url(self) -> str:
        return f"{list_path()}?region={self.slug}"


class CardRow(NamedTuple):
    """Everything a story card shows, fetched as a plain row: the list builds no model instance per story."""

    pk: int
    slug: str
    title: str
    dek: str
    published_at: datetime
    reading_minutes: int
    comment_count: int
    ai_labelled: bool
    image_url: str
    image_srcset: str
    image_width: int | None
    image_height: int | None
    section_name: str | None
    section_slug: str | None
    source_name: str
    source_slug: str


_CARD_LOOKUPS = (*CardRow._fields[:-4], "section__name", "section__slug", "source__name", "source__slug")


def listed_card_rows(
    *,
    section_id: int | None = None,
    tag_id: int | None = None,
    region_ids: Collection[int] = (),
    source_id: int | None = None,
    after: tuple[datetime, int] | None = None,
    before: tuple[datetime, int] | None = None,
    limit: int,
) -> list[CardRow]:
    """Cards of the stories the list shows (as `published().one_per_coverage_group()` finds them) with
    these filters: newest first, after the (publication time, id) cursor `after`; or, from `before`,
    the oldest first of those newer than it.

    Every page of the list runs this, so it is one query written out: built, compiled and read through
    the ORM, it cost the page three times what the database spends answering it; and planned once per
    connection."""
    sql, params = [_LISTED_SQL["select"]], [connection.ops.adapt_datetimefield_value(timezone.now())]
    for name, value in (("section_id", section_id), ("tag_id", tag_id), ("source_id", source_id)):
        if value is not None:
            sql.append(_LISTED_SQL[name])
            params.append(value)
    if region_ids:
        sql.append(f" AND s.region_id IN ({', '.join(['%s'] * len(region_ids))})")
        params += region_ids
    if after or before:
        published_at, pk = after or before
        sql.append(" AND (s.published_at, s.id) < (%s, %s)" if after else " AND (s.published_at, s.id) > (%s, %s)")
        params += [connection.ops.adapt_datetimefield_value(published_at), pk]
    order = "ASC" if before and not after else "DESC"
    # The limit written in, so that a plan kept for the query is as cheap as one made for its values.
    sql.append(f" ORDER BY s.published_at {order}, s.id {order} LIMIT {int(limit)}")
    # The filters take their plan from their values (a rare section reads its own index, a common one the
    # list's newest rows): only the unfiltered list, the most read, runs from a plan kept per connection.
    filtered = region_ids or any(value is not None for value in (section_id, tag_id, source_id))
    with connection.cursor() if filtered else planned_once() as cursor:
        cursor.execute("".join(sql), params)
        rows = cursor.fetchall()
    if connection.vendor == "sqlite":  # it hands back naive UTC times
        rows = [(*row[:4], timezone.make_aware(row[4], UTC), *row[5:]) for row in rows]
    return [CardRow._make(row) for row in rows]


# What a story page shows of a story and of what it is filed under, and what the page's parts read of it
# (its status, comments mode and counts): not the bookkeeping of the importer, the labeller and search,
# whose search vector alone can outweigh the page, nor a source's import health.
_PAGE_FIELDS = (
    *("title", "slug", "dek", "body_html", "original_url", "author", "published_at", "updated_at", "language"),
    *("reading_minutes", "view_count", "comment_count", "ai_generated", "ai_labelled", "status", "comments_mode"),
    *("image_url", "image_srcset", "image_width", "image_height", "image_alt"),
    *("image_credit", "image_credit_url", "image_provider", "image_provider_url"),
    *("source__name", "source__slug", "source__homepage_url", "section__name", "section__slug"),
    *("region__name", "region__slug", "region__parent__name", "region__parent__slug", "duplicate_of"),
)

# A search ranks this many of its newest matches: ranking reads every candidate's vector, and a common
# word matches most of a large site's stories.
SEARCH_CANDIDATES = 1_000

# Stories the list may show, as far as an index can tell: published (the time is checked per row) and not
# another source's story on news already listed.
LISTED = Q(status="published", duplicate_of__isnull=True)


class StoryQuerySet(models.QuerySet):
    def published(self) -> "StoryQuerySet":
        return self.filter(status=Story.Status.PUBLISHED, published_at__lte=timezone.now())

    def card_rows(self) -> list[CardRow]:
        """These stories' cards' values, in one query of only the columns a card shows."""
        return [CardRow._make(row) for row in self.values_list(*_CARD_LOOKUPS)]

    def for_cards(self) -> "StoryQuerySet":
        """Everything a story card shows, as model instances (the Following page, a page's personal parts),
        fetched up front in a fixed number of queries; the story list reads `listed_card_rows` instead."""
        return self.select_related("source", "section", "region__parent").prefetch_related(
            models.Prefetch("tags", queryset=Tag.objects.order_by("name"))
        )

    def one_per_coverage_group(self) -> "StoryQuerySet":
        """Leave out stories that another source's story already covers."""
        return self.filter(duplicate_of__isnull=True)

    def counts_of(self, pk: int) -> dict[str, int] | None:
        """The story's view and comment counts, which change without changing what its page shows."""
        return self.filter(pk=pk).values("view_count", "comment_count").first()

    def for_page(self) -> "StoryQuerySet":
        """Stories as their page shows them: only the columns it reads, what they are filed under (tags
        apart), and whether other sources' stories cover the same news (`has_coverage`)."""
        covered = Story.objects.published().filter(duplicate_of=models.OuterRef("pk"))
        return (
            self.select_related("source", "section", "region__parent")
            .only(*_PAGE_FIELDS)
            .annotate(has_coverage=models.Exists(covered))
        )

    def as_links(self) -> "StoryQuerySet":
        """Stories as a link to them shows them: title, source and whether it may be shown."""
        return self.select_related("source").only("slug", "title", "status", "published_at", "source__name")

    def covering(self, story: "Story") -> "StoryQuerySet":
        """The published stories of other sources on the same news as `story`, oldest first."""
        return self.published().filter(duplicate_of=story).as_links().order_by("published_at")

    # The filters take ids, not slugs: with the value in the query, the planner can tell a rare section or
    # source (read its own index) from a common one (read the list's newest rows until a page is full).
    def in_section(self, section_id: int) -> "StoryQuerySet":
        return self.filter(section_id=section_id)

    def tagged(self, tag_id: int) -> "StoryQuerySet":
        return self.filter(tags=tag_id)

    def in_regions(self, region_ids: Collection[int]) -> "StoryQuerySet":
        """Stories in any of these regions: a continent's list names the continent and its countries."""
        return self.filter(region_id__in=region_ids)

    def from_source(self, source_id: int) -> "StoryQuerySet":
        return self.filter(source_id=source_id)

    def in_pipeline(self) -> "StoryQuerySet":
        return self.exclude(pipeline_state=Story.PipelineState.ILLUSTRATED)

    def resume_pipeline_after(self, state: str) -> int:
        """Send these stories back through the pipeline from the step after `state` (relabel, re-illustrate)."""
        return self.update(**Story.pipeline_fields_after(state))

    def pipeline_overdue(self, now=None) -> "StoryQuerySet":
        """Stories whose next step should have finished by now: its message was lost, or its worker died."""
        return self.in_pipeline().filter(pipeline_due_at__lte=now or timezone.now())

    def refresh_search_vectors(self) -> int:
        """Recompute the full-text search vectors of these stories (PostgreSQL only)."""
        if connection.vendor != "postgresql":
            return 0
        return self.update(search_vector=_STORY_SEARCH_VECTOR)

    def search(self, query: str) -> "StoryQuerySet":
        """Stories matching `query`, best first among the SEARCH_CANDIDATES newest matches: full-text search
        on PostgreSQL, substring elsewhere."""
        query = query.strip()
        if not query:
            return self
        if connection.vendor == "postgresql":
            search_query = SearchQuery(query, search_type="websearch", config="english")
            newest = self.filter(search_vector=search_query).order_by("-published_at", "-pk").values("pk")
            return (
                self.filter(pk__in=newest[:SEARCH_CANDIDATES])
                .annotate(rank=SearchRank(F("search_vector"), search_query))
                .order_by("-rank", "-published_at", "-pk")
            )
        words = query.split()
        matches = Q()
        for word in words:
            matches &= Q(title__icontains=word) | Q(dek__icontains=word) | Q(body_text__icontains=word)
        return self.filter(matches)


class Story(models.Model):
    """One news story as readers see it: imported, labelled, illustrated and published."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        HIDDEN = "hidden", "Hidden"

    class CommentsMode(models.TextChoices):
        OPEN = "open", "Open"
        PREMODERATED = "premoderated", "Open, every comment pre-moderated"
        CLOSED = "closed", "Closed"

    class PipelineState(models.TextChoices):
        """The last background step the story finished; `stories.pipeline` knows what comes next."""

        IMPORTED = "imported", "Imported"
        FULL_TEXT = "full_text", "Full text extracted"
        LABELLED = "labelled", "Labelled"
        ILLUSTRATED = "illustrated", "Illustrated (done)"

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="stories")
    section = models.ForeignKey(Section, on_delete=models.SET_NULL, null=True, blank=True, related_name="stories")
    region = models.ForeignKey(Region, on_delete=models.SET_NULL, null=True, blank=True, related_name="stories")
    tags = models.ManyToManyField(Tag, blank=True, related_name="stories")

    title = models.CharField(max_length=300)
    slug = models.SlugField(max_length=220, unique=True)
    dek = models.TextField(blank=True, help_text="One or two sentences under the headline.")
    body_html = models.TextField("body", blank=True, help_text="Stored sanitised.")
    body_text = models.TextField(blank=True, editable=False)
    original_url = models.URLField(
        "original URL", max_length=2000, blank=True, help_text="Blank when the feed gave the entry no link."
    )
    author = models.CharField(max_length=200, blank=True)
    published_at = models.DateTimeField(default=timezone.now, db_index=True)

    image_url = models.CharField("image URL", max_length=2000, blank=True)
    image_width = models.PositiveIntegerField(null=True, blank=True)
    image_height = models.PositiveIntegerField(null=True, blank=True)
    image_alt = models.CharField("image alt text", max_length=500, blank=True)
    image_credit = models.CharField("photographer", max_length=200, blank=True)
    image_credit_url = models.URLField("photographer's page", max_length=2000, blank=True)
    image_provider = models.CharField(max_length=100, blank=True)
    image_provider_url = models.URLField("provider's page for the image", max_length=2000, blank=True)
    image_srcset = models.TextField(
        "image srcset", blank=True, editable=False, help_text="Our stored WebP sizes of the image, for srcset."
    )

    language = models.CharField(max_length=16, blank=True, default="en")
    reading_minutes = models.PositiveSmallIntegerField(default=1)
    view_count = models.PositiveIntegerField(default=0)
    comment_count = models.PositiveIntegerField(default=0, help_text="Comments readers can see; kept by comments.")

    ai_generated = models.BooleanField("AI-generated text", default=False)
    ai_labelled = models.BooleanField("AI-labelled", default=False)
    labeller = models.CharField(max_length=100, blank=True, help_text="Which labeller and version labelled it.")
    labelled_at = models.DateTimeField(null=True, blank=True, editable=False)
    label_confidence = models.JSONField("confidence per field", default=dict, blank=True, editable=False)
    label_fallback = models.TextField(
        blank=True, editable=False, help_text="Why the configured labeller failed, when another one answered."
    )

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT, db_index=True)
    comments_mode = models.CharField(max_length=12, choices=CommentsMode.choices, default=CommentsMode.OPEN)

    # The background pipeline (stories/pipeline.py): the database says what is due, the queue only hints
    pipeline_state = models.CharField(
        max_length=12, choices=PipelineState.choices, default=PipelineState.ILLUSTRATED, editable=False
    )
    pipeline_due_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the sweep queues the next step again if it has not finished by then; empty when done.",
    )
    pipeline_started_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When a worker took the step in hand; empty while waiting."
    )
    pipeline_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    pipeline_error = models.TextField(blank=True, editable=False)
    pipeline_steps = models.JSONField(
        default=dict, blank=True, editable=False, help_text="When each step last started and finished."
    )

    # Importing: the entry's identity within its source, and what it looked like last time
    entry_key = models.CharField(max_length=64, blank=True, editable=False)
    guid = models.CharField("GUID", max_length=2000, blank=True, editable=False)
    entry_hash = models.CharField(max_length=64, blank=True, editable=False)
    similarity_signature = models.BinaryField(null=True, blank=True, editable=False)
    duplicate_of = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="also_covered_by",
        help_text="The first story of this group of near-duplicates from other sources.",
    )

    search_vector = SearchVectorField(null=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = StoryQuerySet.as_manager()

    class Meta:
        ordering = ["-published_at", "-pk"]
        verbose_name_plural = "stories"
        indexes = [
            models.Index(fields=["status", "-published_at"], name="story_status_published_idx"),
            # The story list, newest first, unfiltered and by each filter but search: only the stories it
            # may show are in these, so a page is the first rows of one index whatever the table's size.
            models.Index(fields=["-published_at", "-id"], condition=LISTED, name="story_listed_idx"),
            models.Index(fields=["section", "-published_at", "-id"], condition=LISTED, name="story_listed_section_idx"),
            models.Index(fields=["source", "-published_at", "-id"], condition=LISTED, name="story_listed_source_idx"),
            models.Index(fields=["region", "-published_at", "-id"], condition=LISTED, name="story_listed_region_idx"),
            # The sweep's scan: only stories still in the pipeline are in this index.
            models.Index(
                fields=["pipeline_due_at"], condition=~Q(pipeline_state="illustrated"), name="story_pipeline_due_idx"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "entry_key"], condition=~Q(entry_key=""), name="story_unique_entry_per_source"
            )
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs) -> None:
        self.clean_text()
        if not self.slug:
            self.slug = unique_slug(Story, self.title, exclude_pk=self.pk)
        super().save(*args, **kwargs)
        Story.objects.filter(pk=self.pk).refresh_search_vectors()

    def get_absolute_url(self) -> str:
        return _story_path().format(self.slug)

    @classmethod
    def from_db(cls, db, field_names, values) -> "Story":
        story = super().from_db(db, field_names, values)
        # The address its pages were cached under, which a new slug must invalidate too (stories/signals.py).
        story.slug_as_loaded = story.__dict__.get("slug")
        return story

    def clean_text(self) -> None:
        """Cut the body to STORY_BODY_MAX_CHARS, sanitise it and derive its plain text and reading time (also
        for bulk creation). Every body passes here: imported, extracted, written by a labeller or an editor."""
        self.body_html = sanitize_html(self.body_html[:STORY_BODY_MAX_CHARS])
        self.body_text = html_to_text(self.body_html)
        self.reading_minutes = reading_minutes(f"{self.dek} {self.body_text}")

    @staticmethod
    def pipeline_fields_after(state: str) -> dict:
        """The pipeline fields of a story that just finished `state`: its next step is due, and the sweep
        queues it again if it has not finished within PIPELINE_RETRY_SECONDS."""
        return {
            "pipeline_state": state,
            "pipeline_due_at": timezone.now() + timedelta(seconds=settings.PIPELINE_RETRY_SECONDS),
            "pipeline_started_at": None,
            "pipeline_attempts": 0,
            "pipeline_error": "",
        }

    @property
    def is_visible(self) -> bool:
        return self.status == self.Status.PUBLISHED and self.published_at <= timezone.now()

    @property
    def comments_open(self) -> bool:
        return self.comments_mode != self.CommentsMode.CLOSED


# The list's query (`listed_card_rows`): its columns in CardRow's order, and its filters.
_LISTED_SQL = {
    "select": (
        "SELECT s.id, s.slug, s.title, s.dek, s.published_at, s.reading_minutes, s.comment_count, s.ai_labelled,"
        " s.image_url, s.image_srcset, s.image_width, s.image_height, sec.name, sec.slug, src.name, src.slug"
        " FROM stories_story s JOIN stories_source src ON src.id = s.source_id"
        " LEFT JOIN stories_section sec ON sec.id = s.section_id"
        " WHERE s.status = 'published' AND s.published_at <= %s AND s.duplicate_of_id IS NULL"
    ),
    "section_id": " AND s.section_id = %s",
    "source_id": " AND s.source_id = %s",
    "tag_id": " AND s.id IN (SELECT story_id FROM stories_story_tags WHERE tag_id = %s)",
}

_STORY_SEARCH_VECTOR = (
    SearchVector("title", weight="A", config="english")
    + SearchVector("dek", weight="B", config="english")
    + SearchVector("body_text", weight="C", config="english")
)


class StoryRevision(models.Model):
    """What a story looked like before its source updated the entry."""

    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="revisions")
    created_at = models.DateTimeField(auto_now_add=True)
    changed_fields = models.JSONField(default=list)
    title = models.CharField(max_length=300)
    dek = models.TextField(blank=True)
    body_html = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Revision of {self.story_id} at {self.created_at:%Y-%m-%d %H:%M}"


class LabelCorrectionQuerySet(models.QuerySet):
    def active(self) -> "LabelCorrectionQuerySet":
        return self.filter(withdrawn_at__isnull=True)


class LabelCorrection(models.Model):
    """A moderator's correction of a story's label: it overrides the labeller, survives relabelling,
    and is kept as a labelled example to improve the labeller with."""

    class Field(models.TextChoices):
        SECTION = "section", "Section"
        TAGS = "tags", "Tags"
        REGION = "region", "Region"

    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="label_corrections")
    field = models.CharField(max_length=10, choices=Field.choices)
    value = models.JSONField(help_text="The corrected value: a section or region slug, or a list of tag names.")
    previous_value = models.JSONField(null=True, blank=True)
    corrected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    objects = LabelCorrectionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["field", "withdrawn_at"], name="labelcorrection_active_idx")]

    def __str__(self) -> str:
        return f"{self.get_field_display()} of story {self.story_id}: {self.value}"


class LabellerVersionQuerySet(models.QuerySet):
    def current(self) -> "LabellerVersion | None":
        """The promoted version every worker labels with, or None (the prior alone)."""
        return self.filter(status=LabellerVersion.Status.PROMOTED).first()

    def current_id(self) -> int | None:
        """The promoted version's id: the one-row query workers use to notice a new version."""
        return self.filter(status=LabellerVersion.Status.PROMOTED).values_list("pk", flat=True).first()


class LabellerVersion(models.Model):
    """One fit of the section model learnt from moderators' corrections: its parameters, what it learnt
    from, how it scored on the held-out share of the corrections, and whether it labels stories.

    At most one version is promoted at a time (a partial unique constraint); promoting one retires its
    predecessor in the same transaction, and workers notice the change without a restart.
    """

    class Status(models.TextChoices):
        PROMOTED = "promoted", "Promoted (labels stories)"
        RETIRED = "retired", "Retired"
        REFUSED = "refused", "Not promoted"

    class Trigger(models.TextChoices):
        CORRECTIONS = "corrections", "After new corrections"
        NIGHTLY = "nightly", "Nightly"
        MODERATOR = "moderator", "Asked for in admin"

    number = models.PositiveIntegerField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    data_as_of = models.DateTimeField(help_text="The corrections were read at this time.")
    trigger = models.CharField(max_length=12, choices=Trigger.choices, default=Trigger.NIGHTLY)
    status = models.CharField(max_length=10, choices=Status.choices, db_index=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    refusal_reason = models.TextField(blank=True, help_text="Why this version was not promoted, or was retired.")
    basis = models.CharField(
        max_length=200, help_text="The encoder and section profiles it was fitted with; it is used with no other."
    )
    labelled_by = models.CharField(max_length=100, blank=True, help_text="What stories it labels record as labeller.")
    parameters = models.BinaryField(
        blank=True, editable=False, help_text="Fitted on every correction; empty when no section has enough."
    )
    trial_parameters = models.BinaryField(
        blank=True, editable=False, help_text="Fitted without the held-out share, to compare versions fairly."
    )
    correction_count = models.PositiveIntegerField("corrections", default=0)
    held_out_count = models.PositiveIntegerField("held out", default=0)
    held_out_accuracy = models.FloatField(null=True, blank=True)
    predecessor_accuracy = models.FloatField(
        null=True, blank=True, help_text="What the version it was compared with scored on the same held-out share."
    )
    compared_with = models.CharField(max_length=100, blank=True)
    section_stats = models.JSONField(
        default=dict, blank=True, help_text="Per section: training examples, weight, held-out corrections and hits."
    )
    label_changes = models.JSONField(
        default=list, blank=True, help_text="Recent stories whose section this version changes: [id, from, to]."
    )
    fit_seconds = models.FloatField(default=0)

    objects = LabellerVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="promoted"), name="labellerversion_one_promoted"
            ),
            models.CheckConstraint(
                condition=Q(promoted_at__isnull=False) | ~Q(status="promoted"),
                name="labellerversion_promoted_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"Labeller version {self.number}"


class LabelReportQuerySet(models.QuerySet):
    def open(self) -> "LabelReportQuerySet":
        return self.filter(status=LabelReport.Status.OPEN)

    def with_reader_counts(self) -> "LabelReportQuerySet":
        """Each report with how many readers have an open report on the same story's labels."""
        readers = (
            LabelReport.objects.open()
            .filter(story=models.OuterRef("story"))
            .values("story")
            .annotate(count=models.Count("pk"))
            .values("count")
        )
        return self.annotate(readers=Coalesce(models.Subquery(readers), 0))


class LabelReport(models.Model):
    """A signed-in reader's report that a story's section or one of its tags is wrong.

    Reports wait in the admin queue; only what a moderator confirms becomes a `LabelCorrection`.
    """

    class Kind(models.TextChoices):
        SECTION = "section", "Wrong section"
        TAG = "tag", "Wrong tag"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CONFIRMED = "confirmed", "Confirmed"
        DISMISSED = "dismissed", "Dismissed"

    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="label_reports")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    tag = models.ForeignKey(
        Tag, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", help_text="The tag said to be wrong."
    )
    suggested_section = models.ForeignKey(Section, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    suggestion = models.CharField(max_length=200, blank=True, help_text="The reader's own words: a better tag, a note.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    correction = models.ForeignKey(
        LabelCorrection, on_delete=models.SET_NULL, null=True, blank=True, related_name="reports"
    )

    objects = LabelReportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["story", "reporter"], name="labelreport_one_per_reader"),
            models.CheckConstraint(
                condition=Q(status="open", handled_at__isnull=True) | (~Q(status="open") & Q(handled_at__isnull=False)),
                name="labelreport_handled_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on story {self.story_id}"
