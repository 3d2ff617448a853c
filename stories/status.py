"""The system status staff see in the admin: is every part running, and where is work piling up?

Workers and beat leave heartbeats in the database (`record_heartbeat`, wired to Celery's signals in
`newsreader/celery.py`); everything else is read from the database and the broker when the page is
asked for, in a fixed number of queries.
"""

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from amqp.exceptions import ChannelError
from celery.signals import before_task_publish, worker_ready
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Min
from django.utils import timezone
from django.utils.timesince import timesince

from newsreader.observability import counter_totals
from stories.models import Heartbeat, ImportRun, LabellerVersion, Source, Story

logger = logging.getLogger(__name__)

# A worker writes its heartbeat this often; one silent for three beats is reported as gone.
WORKER_HEARTBEAT_SECONDS = 30
STALE_BEATS = 3
FAILING_SOURCES_SHOWN = 10
IMPORT_ERRORS_SHOWN = 10


def record_heartbeat(*, name: str, kind: str, started: bool = False) -> None:
    now = timezone.now()
    defaults = {"kind": kind, "seen_at": now, **({"started_at": now} if started else {})}
    Heartbeat.objects.update_or_create(name=name[:200], defaults=defaults)


# --- Heartbeats from Celery's processes ------------------------------------------------------------


@worker_ready.connect
def _worker_started(sender=None, **kwargs) -> None:
    """Record the worker now and every WORKER_HEARTBEAT_SECONDS from a thread of its main process."""
    name = getattr(sender, "hostname", None) or socket.gethostname()
    record_heartbeat(name=name, kind=Heartbeat.Kind.WORKER, started=True)

    def beat() -> None:
        while True:
            time.sleep(WORKER_HEARTBEAT_SECONDS)
            try:
                record_heartbeat(name=name, kind=Heartbeat.Kind.WORKER)
            except DatabaseError:
                logger.warning("Could not record the worker's heartbeat.", exc_info=True)
            finally:
                connection.close()

    threading.Thread(target=beat, name="status-heartbeat", daemon=True).start()


@before_task_publish.connect
def _beat_sent_the_sweep(sender=None, **kwargs) -> None:
    """Beat is the only sender of the sweep: sending it is beat's sign of life."""
    if sender == "stories.tasks.sweep_pipeline":
        try:
            record_heartbeat(name="beat", kind=Heartbeat.Kind.BEAT)
        except DatabaseError:
            logger.warning("Could not record beat's heartbeat.", exc_info=True)


@dataclass(frozen=True)
class StepBacklog:
    state: str
    label: str
    waiting: int
    oldest_due: datetime | None


@dataclass
class SystemStatus:
    checked_at: datetime
    heartbeats: list[Heartbeat]
    queue_length: int | None
    queue_error: str
    backlog: list[StepBacklog]
    failing_sources: list[Source]
    import_errors: list[ImportRun]
    labeller: str
    labeller_version: LabellerVersion | None
    page_cache_lookups: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def page_cache_hit_rate(self) -> float | None:
        hits, misses = self.page_cache_lookups.get("hit", 0), self.page_cache_lookups.get("miss", 0)
        return hits / (hits + misses) if hits + misses else None

    @property
    def verdict(self) -> str:
        return "All running" if not self.problems else self.problems[0]


def _stale_after() -> dict[str, timedelta]:
    return {
        Heartbeat.Kind.WORKER: timedelta(seconds=WORKER_HEARTBEAT_SECONDS * STALE_BEATS),
        Heartbeat.Kind.BEAT: timedelta(seconds=settings.PIPELINE_SWEEP_SECONDS * STALE_BEATS),
    }


def queue_length() -> tuple[int | None, str]:
    """Messages waiting in the default queue, asked of the broker; None and the reason when it cannot say."""
    from newsreader.celery import app

    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1)
            declared = connection.default_channel.queue_declare(queue=app.conf.task_default_queue, passive=True)
            return declared.message_count, ""
    except ChannelError as error:
        if str(getattr(error, "reply_code", "")) == "404":
            return 0, ""  # no message was queued since the broker started
        return None, f"The broker could not be asked: {error}"
    except Exception as error:  # any broker failure is what this page is for
        return None, f"The broker could not be asked: {error}"


def system_status() -> SystemStatus:
    now = timezone.now()
    heartbeats = list(Heartbeat.objects.all())
    length, queue_error = queue_length()
    labels = dict(Story.PipelineState.choices)
    backlog = [
        StepBacklog(row["pipeline_state"], labels[row["pipeline_state"]], row["waiting"], row["oldest_due"])
        for row in Story.objects.in_pipeline()
        .values("pipeline_state")
        .annotate(waiting=Count("pk"), oldest_due=Min("pipeline_due_at"))
        .order_by("pipeline_state")
    ]
    status = SystemStatus(
        checked_at=now,
        heartbeats=heartbeats,
        queue_length=length,
        queue_error=queue_error,
        backlog=backlog,
        failing_sources=list(
            Source.objects.filter(is_active=True, consecutive_errors__gt=0).order_by("-consecutive_errors", "name")[
                :FAILING_SOURCES_SHOWN
            ]
        ),
        import_errors=list(
            ImportRun.objects.filter(outcome__in=[ImportRun.Outcome.FAILED, ImportRun.Outcome.INTERRUPTED])
            .select_related("source")
            .order_by("-started_at")[:IMPORT_ERRORS_SHOWN]
        ),
        labeller=settings.LABELLER,
        labeller_version=LabellerVersion.objects.current(),
        page_cache_lookups=counter_totals("newsreader_page_cache_lookups", "result"),
    )
    status.problems = _problems(status, now)
    return status


def _problems(status: SystemStatus, now: datetime) -> list[str]:
    problems = []
    stale_after = _stale_after()
    beats = [heartbeat for heartbeat in status.heartbeats if heartbeat.kind == Heartbeat.Kind.BEAT]
    workers = [heartbeat for heartbeat in status.heartbeats if heartbeat.kind == Heartbeat.Kind.WORKER]
    if not beats:
        problems.append("Beat has never run: start `celery -A newsreader beat`.")
    elif now - beats[0].seen_at > stale_after[Heartbeat.Kind.BEAT]:
        problems.append(f"Beat has not run for {timesince(beats[0].seen_at, now)}.")
    if not any(now - worker.seen_at <= stale_after[Heartbeat.Kind.WORKER] for worker in workers):
        last = max((worker.seen_at for worker in workers), default=None)
        problems.append(f"No worker has been seen for {timesince(last, now)}." if last else "No worker has ever run.")
    if status.queue_error:
        problems.append(status.queue_error)
    overdue_after = now - timedelta(seconds=settings.PIPELINE_RETRY_SECONDS * 5)
    for step in status.backlog:
        if step.oldest_due and step.oldest_due < overdue_after:
            problems.append(
                f"Stories have waited after “{step.label}” for {timesince(step.oldest_due, now)} "
                f"({step.waiting} waiting)."
            )
    if status.failing_sources:
        problems.append("Some sources are failing; see below.")
    return problems
