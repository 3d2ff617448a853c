"""The background pipeline: the one place that knows the order of a story's steps, and the sweep that
finds work the queue lost.

A source is imported; each story it brings is then extracted (when its source asks for full text),
labelled and illustrated, in that order. The database records where each story is
(`Story.pipeline_state`, the last step it finished) and when its next step is due to have finished
(`pipeline_due_at`). A queue message only says "look at this story now": a lost message, an emptied
queue or a killed worker delays a step until the sweep, every minute, queues whatever is overdue again.
A step is taken in hand with a conditional update, so two messages for one story never run a step twice
at once, and a step that keeps failing or killing its worker is given up after PIPELINE_MAX_ATTEMPTS.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from newsreader.celery import app
from stories import leases
from stories.images.service import choose_story_image
from stories.importing import service as importing
from stories.labelling.service import label_story
from stories.models import ImportRun, Source, Story

logger = logging.getLogger(__name__)

State = Story.PipelineState
IMPORT_TASK = "stories.tasks.import_source_task"
ADVANCE_TASK = "stories.tasks.advance_story_task"


@dataclass(frozen=True)
class Step:
    """One step: what it is called, what it does, the state it leaves the story in, how long it may take.
    `run` returns a time when the step asks to be tried again later (a rate-limited image provider)."""

    key: str
    title: str
    run: Callable[[int], datetime | None]
    done: str
    lease_seconds: Callable[[], int]


def _extract(story_id: int) -> None:
    importing.extract_full_text(story_id=story_id)


def _label(story_id: int) -> None:
    label_story(story_id=story_id)


def _illustrate(story_id: int) -> datetime | None:
    record = choose_story_image(story_id=story_id)
    return record.retry_at if record is not None else None


def _label_lease() -> int:
    """Every try of a remote labeller with its waits, plus a lease's margin."""
    per_try = settings.OPENAI_TIMEOUT_SECONDS + settings.OPENAI_MAX_RETRY_WAIT_SECONDS
    return int(per_try * (settings.OPENAI_MAX_RETRIES + 1)) + leases.lease_seconds()


def _image_lease() -> int:
    """Two searches per provider and every download, plus a lease's margin."""
    searches = 2 * len(settings.IMAGE_PROVIDERS) * settings.IMAGE_API_DEADLINE_SECONDS
    downloads = (settings.IMAGE_DOWNLOAD_ATTEMPTS + 3) * settings.IMAGE_FETCH_DEADLINE_SECONDS
    return int(searches + downloads) + leases.lease_seconds()


EXTRACT = Step("full_text", "full text", _extract, State.FULL_TEXT, leases.lease_seconds)
LABEL = Step("label", "labelling", _label, State.LABELLED, _label_lease)
ILLUSTRATE = Step("image", "picture", _illustrate, State.ILLUSTRATED, _image_lease)


def next_step(state: str, *, full_text: bool) -> Step | None:
    """The step a story in `state` takes next, or None when it is done. `State.FULL_TEXT` means "its
    text is ready", so relabelling any story sends it back there."""
    if state == State.IMPORTED:
        return EXTRACT if full_text else LABEL
    if state == State.FULL_TEXT:
        return LABEL
    if state == State.LABELLED:
        return ILLUSTRATE
    return None


# --- Queueing ------------------------------------------------------------------------------------


def _send(task_name: str, *args) -> None:
    """Queue a task once the transaction commits. A broker that cannot be reached loses nothing: the
    database still says the work is due, and the sweep queues it again."""

    def send() -> None:
        try:
            app.send_task(task_name, args=args, retry=False)
        except Exception:  # any broker failure: the sweep is the safety net
            logger.warning("Could not queue %s%s; the sweep will queue it again.", task_name, args, exc_info=True)

    transaction.on_commit(send)


def queue_stories(story_ids: Iterable[int]) -> int:
    count = 0
    for story_id in story_ids:
        _send(ADVANCE_TASK, story_id)
        count += 1
    return count


def resume_after(state: str, story_ids: Iterable[int]) -> int:
    """Send stories back through the pipeline from the step after `state`: `State.FULL_TEXT` relabels
    them (then looks for a picture if they have none), `State.LABELLED` looks for a picture again."""
    story_ids = list(story_ids)
    Story.objects.filter(pk__in=story_ids).resume_pipeline_after(state)
    return queue_stories(story_ids)


def relabel(story_ids: Iterable[int]) -> int:
    """Label these stories again (a moderator asked, or a new labeller version changes them)."""
    return resume_after(State.FULL_TEXT, story_ids)


def request_import(*, source: Source) -> None:
    """Import `source` as soon as a worker is free ("Import now"), due or not. A source whose worker died
    mid-import is taken over once that worker's lease has lapsed."""
    now = timezone.now()
    Source.objects.filter(pk=source.pk).update(import_queued_at=now, next_fetch_at=now)
    _send(IMPORT_TASK, source.pk)


# --- Running -------------------------------------------------------------------------------------


def import_source(*, source_id: int) -> ImportRun | None:
    """Import a source that was queued, then start its new and changed stories on their steps."""
    run = importing.import_source(source_id=source_id, only_if_queued=True)
    if run is not None and run.outcome == ImportRun.Outcome.IMPORTED:
        waiting = Story.objects.filter(
            source_id=source_id, pipeline_state=State.IMPORTED, pipeline_started_at__isnull=True
        )
        queue_stories(waiting.values_list("pk", flat=True))
    return run


@dataclass(frozen=True)
class Claim:
    """A step a worker has taken in hand; its writes land only while the story is still as it was taken
    (a re-import, or a sweep that found the lease lapsed, voids the claim)."""

    story_id: int
    state: str
    full_text: bool
    step: Step
    started_at: datetime
    attempts: int

    def record(self, *, outcome: str, **fields) -> bool:
        stories = Story.objects.filter(pk=self.story_id, pipeline_state=self.state, pipeline_started_at=self.started_at)
        steps = stories.values_list("pipeline_steps", flat=True).first()
        if steps is None:
            return False
        entry = {"started": self.started_at.isoformat(), "ended": timezone.now().isoformat(), "outcome": outcome}
        return bool(stories.update(pipeline_steps={**steps, self.step.key: entry}, **fields))


def advance_story(*, story_id: int) -> str | None:
    """Run the story's next step if it is due and no live worker has it in hand. Returns the state the
    story is left in, or None when there was nothing to do or the step will be tried again."""
    claim = _take(story_id)
    if claim is None:
        return None
    if claim.attempts > settings.PIPELINE_MAX_ATTEMPTS:
        return _move_on(
            claim,
            error=f"Gave up on the {claim.step.title} after {claim.attempts - 1} tries that never "
            "finished (the worker stopped each time).",
        )
    try:
        wait_until = claim.step.run(story_id)
    except Exception as error:
        return _failed(claim, error)
    if wait_until is not None and wait_until > timezone.now() and claim.attempts < settings.PIPELINE_MAX_ATTEMPTS:
        claim.record(outcome="waiting", pipeline_started_at=None, pipeline_due_at=wait_until)
        return claim.state
    return _move_on(claim)


def _take(story_id: int) -> Claim | None:
    """Take the story's next step in hand, unless it is done or a worker holds a live lease on it."""
    row = (
        Story.objects.filter(pk=story_id)
        .values_list("pipeline_state", "source__full_text", "pipeline_attempts")
        .first()
    )
    if row is None:
        return None
    state, full_text, attempts = row
    step = next_step(state, full_text=full_text)
    if step is None:
        return None
    now = timezone.now()
    taken = (
        Story.objects.filter(pk=story_id, pipeline_state=state)
        .filter(Q(pipeline_started_at__isnull=True) | Q(pipeline_due_at__lt=now))
        .update(
            pipeline_started_at=now,
            pipeline_due_at=now + timedelta(seconds=step.lease_seconds()),
            pipeline_attempts=F("pipeline_attempts") + 1,
        )
    )
    return Claim(story_id, state, full_text, step, now, attempts + 1) if taken else None


def _move_on(claim: Claim, *, error: str = "") -> str:
    """The step is done, or given up: the story moves to the next step, which is queued at once."""
    if error:
        logger.warning("Story %s: %s", claim.story_id, error)
    fields = {**Story.pipeline_fields_after(claim.step.done), "pipeline_error": error}
    following = next_step(claim.step.done, full_text=claim.full_text)
    if following is None:
        fields["pipeline_due_at"] = None
    if claim.record(outcome="gave up" if error else "done", **fields) and following:
        queue_stories([claim.story_id])
    return claim.step.done


def _failed(claim: Claim, error: Exception) -> str | None:
    """The step raised: try again after a backoff, or move on without it once tries run out."""
    message = f"The {claim.step.title} step failed: {error}"
    if isinstance(error, importing.TransientImportError):
        logger.info("Story %s: %s", claim.story_id, message)
    else:
        logger.exception("Story %s: %s", claim.story_id, message)
    if claim.attempts >= settings.PIPELINE_MAX_ATTEMPTS:
        return _move_on(claim, error=f"{message} Gave up after {claim.attempts} tries.")
    backoff = timedelta(seconds=settings.PIPELINE_RETRY_SECONDS * 2 ** (claim.attempts - 1))
    claim.record(
        outcome="failed",
        pipeline_started_at=None,
        pipeline_due_at=timezone.now() + backoff,
        pipeline_error=message,
    )
    return None


# --- The sweep -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepReport:
    interrupted_runs: int
    sources_queued: int
    stories_queued: int


def sweep(*, batch: int | None = None) -> SweepReport:
    """Find the work the database says is due and the queue may have lost, and queue it again: imports
    whose worker died, sources that are due, stories whose step should have finished by now. Beat runs it
    every PIPELINE_SWEEP_SECONDS; each part reads at most `batch` rows through an index."""
    batch = batch or settings.PIPELINE_SWEEP_BATCH
    now = timezone.now()
    interrupted = ImportRun.objects.filter(source__in=Source.objects.lease_lapsed(now)).interrupt(
        importing.INTERRUPTED_REASON
    )

    source_ids = list(Source.objects.due(now).order_by("next_fetch_at").values_list("pk", flat=True)[:batch])
    Source.objects.filter(pk__in=source_ids).update(import_queued_at=now)
    for source_id in source_ids:
        _send(IMPORT_TASK, source_id)

    story_ids = list(
        Story.objects.pipeline_overdue(now).order_by("pipeline_due_at").values_list("pk", flat=True)[:batch]
    )
    # A step whose lease lapsed lost its worker: free it, so the message queued now can take it.
    Story.objects.filter(pk__in=story_ids, pipeline_due_at__lte=now).update(
        pipeline_started_at=None, pipeline_due_at=now + timedelta(seconds=settings.PIPELINE_RETRY_SECONDS)
    )
    queue_stories(story_ids)
    if interrupted or source_ids or story_ids:
        logger.info(
            "Pipeline sweep: %s interrupted imports closed, %s sources and %s stories queued.",
            interrupted,
            len(source_ids),
            len(story_ids),
        )
    return SweepReport(interrupted_runs=interrupted, sources_queued=len(source_ids), stories_queued=len(story_ids))
