"""What an operator sees of a running site: request ids, access log lines and request timings from a
middleware, the /metrics page Prometheus scrapes, and the counters fed by model and Celery signals.

The metrics themselves are defined in `newsreader.metrics`; log formatting is in `newsreader.logs`.
"""

import functools
import hmac
import ipaddress
import logging
import logging.config
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime

from celery.signals import task_failure, task_postrun, task_prerun
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, transaction
from django.db.models import Count
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stories.models import ImportRun, LabelReport, Story
from stories.pipeline import ADVANCE_TASK, IMPORT_TASK

from . import clientaddr, logs, metrics
from .health import HEALTHZ_PATH, READYZ_PATH

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("newsreader.access")

# An incoming X-Request-ID is kept when it looks like an id (a proxy's or a load balancer's), else replaced.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
LOOPBACK_NETWORKS = ("127.0.0.1/32", "::1/128")
# Paths a middleware answers before any URL is resolved, by the name their requests are timed under.
_MIDDLEWARE_PATHS = {HEALTHZ_PATH: "healthz", READYZ_PATH: "readyz"}
# A request relayed by a proxy arrives from the proxy's address, which says nothing about who sent it.
_FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED")


def dependency_of(error: BaseException) -> str | None:
    """Which dependency `error` says has failed: "redis", "database", or None for any other error."""
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return "redis"
    if isinstance(error, DatabaseError):
        return "database"
    return None


# --- Requests --------------------------------------------------------------------------------


class RequestObservabilityMiddleware:
    """Gives each request an id (kept from a sane incoming X-Request-ID, and sent back in that header)
    that every log line of the request carries; times the request by view and status for /metrics;
    writes one access log line.

    It sits at the top of MIDDLEWARE, so the time covers all other middleware, page cache hits included.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        binding = logs.bind(request=request, request_id=request_id)
        try:
            response = self.get_response(request)
            seconds = time.perf_counter() - started
            view = view_name(request)
            metrics.REQUEST_DURATION.labels(view=view, status=str(response.status_code)).observe(seconds)
            response["X-Request-ID"] = request_id
            duration_ms = round(seconds * 1000, 1)
            access_logger.info(
                "%s %s %s %sms",
                request.method,
                view,
                response.status_code,
                duration_ms,
                extra={
                    "method": request.method,
                    "view": view,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                },
            )
        finally:
            logs.unbind(binding)
        return response


class DependencyErrorMiddleware:
    """Counts the Redis and database errors that end a view, for /metrics.

    It sits at the bottom of MIDDLEWARE: a view's exception is offered to the last middleware first,
    and one above may answer it (a 503 for Redis) before the others see it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        dependency = dependency_of(exception)
        if dependency:
            metrics.DEPENDENCY_ERRORS.labels(dependency=dependency, origin="request").inc()


def view_name(request: HttpRequest) -> str:
    """The name of the view that answered (a page cache hit counts as its view), "static" for static
    files, "healthz" and "readyz" for the health checks, "unmatched" for a URL no view has: never the
    path, which would make a label per URL."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name
    if request.path_info in _MIDDLEWARE_PATHS:
        return _MIDDLEWARE_PATHS[request.path_info]
    if request.path.startswith(settings.STATIC_URL):
        return "static"
    return _view_name_of_path(getattr(request, "urlconf", None) or settings.ROOT_URLCONF, request.path_info)


@functools.lru_cache(maxsize=4096)
def _view_name_of_path(urlconf: str, path: str) -> str:
    try:
        return resolve(path, urlconf).view_name
    except Resolver404:
        return "unmatched"


# --- /metrics --------------------------------------------------------------------------------


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus' text format, for the token or addresses the settings allow; a 404 for
    anyone else, so the page does not even show it exists."""
    refusal = scrape_refusal(request)
    if refusal:
        logger.info("Refused a scrape of /metrics from %s: %s", request.META.get("REMOTE_ADDR", "?"), refusal)
        raise Http404
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)


def scrape_refusal(request: HttpRequest) -> str:
    """Why this request may not read the metrics, or "" when it may. With METRICS_TOKEN set, the request
    must bear it; with METRICS_ALLOWED_NETWORKS set, it must come from one of them; with neither, it
    must come from this machine. The address is the client's as `newsreader.clientaddr` finds it."""
    token = settings.METRICS_TOKEN
    if token and not _bears(request, token):
        return "no valid bearer token"
    networks = allowed_networks() or (() if token else _parse_networks(LOOPBACK_NETWORKS))
    if not networks:
        return ""
    if not (settings.TRUSTED_PROXIES or settings.TRUSTED_PROXY_COUNT) and any(
        header in request.META for header in _FORWARDING_HEADERS
    ):
        # Without TRUSTED_PROXIES the address is the proxy's (often 127.0.0.1), not the client's.
        return "relayed by a proxy that TRUSTED_PROXIES does not name"
    address = clientaddr.parse_address(clientaddr.client_address(request))
    if address is None or not any(address.version == net.version and address in net for net in networks):
        return "address not in METRICS_ALLOWED_NETWORKS" if settings.METRICS_ALLOWED_NETWORKS else "not local"
    return ""


def allowed_networks() -> tuple[clientaddr.IPNetwork, ...]:
    """METRICS_ALLOWED_NETWORKS parsed; raises ImproperlyConfigured naming an entry that is not a network."""
    return _parse_networks(tuple(settings.METRICS_ALLOWED_NETWORKS))


@functools.lru_cache(maxsize=8)
def _parse_networks(entries: tuple[str, ...]) -> tuple[clientaddr.IPNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())
    except ValueError as error:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_NETWORKS: {error}. Write comma-separated networks in CIDR notation, e.g. "
            '"10.0.0.0/8,192.0.2.7/32".'
        ) from error


def _bears(request: HttpRequest, token: str) -> bool:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())


def scrape_registry() -> CollectorRegistry:
    """What a scrape reports: every process's values when PROMETHEUS_MULTIPROC_DIR is set, else this
    process's; and the pipeline's backlog, counted in the database now."""
    registry = process_metrics()
    registry.register(PipelineBacklogCollector())
    return registry


def process_metrics() -> CollectorRegistry:
    """The counters and histograms the processes keep: all of them with PROMETHEUS_MULTIPROC_DIR, else this one's."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    return registry


def counter_totals(name: str, label: str) -> dict[str, float]:
    """A counter's totals by one of its labels, summed over the processes `process_metrics` reads."""
    totals: dict[str, float] = {}
    for family in process_metrics().collect():
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_total":
                totals[sample.labels[label]] = totals.get(sample.labels[label], 0.0) + sample.value
    return totals


class PipelineBacklogCollector:
    """Stories still in the background pipeline by the last step they finished, and those overdue: two
    counts on the pipeline's partial index at each scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            waiting = dict(
                Story.objects.in_pipeline().order_by().values_list("pipeline_state").annotate(count=Count("pk"))
            )
            overdue = Story.objects.pipeline_overdue().count()
        except DatabaseError:
            logger.warning("The pipeline backlog is missing from /metrics: the database failed.", exc_info=True)
            metrics.DEPENDENCY_ERRORS.labels(dependency="database", origin="scrape").inc()
            return
        backlog = GaugeMetricFamily(
            "newsreader_pipeline_backlog_stories",
            "Stories still in the background pipeline, by the last step they finished.",
            labels=["state"],
        )
        for state in Story.PipelineState:
            if state != Story.PipelineState.ILLUSTRATED:
                backlog.add_metric([state.value], waiting.get(state.value, 0))
        yield backlog
        yield GaugeMetricFamily(
            "newsreader_pipeline_overdue_stories",
            "Stories whose next step should have finished by now; the sweep queues them again.",
            value=overdue,
        )


# --- Imports and reports -----------------------------------------------------------------------


@receiver(post_save, sender=ImportRun)
def count_finished_import(sender, instance: ImportRun, raw: bool = False, using: str | None = None, **kwargs) -> None:
    if raw or instance.outcome == ImportRun.Outcome.RUNNING:
        return
    outcome, new_entries = instance.outcome, instance.new_count

    def count() -> None:
        metrics.IMPORTS.labels(outcome=outcome).inc()
        metrics.ENTRIES_IMPORTED.inc(new_entries)

    transaction.on_commit(count, using=using)


@receiver(post_save, sender=LabelReport)
def count_label_report(sender, created: bool, raw: bool = False, using: str | None = None, **kwargs) -> None:
    if created and not raw:
        transaction.on_commit(metrics.REPORTS.labels(kind="label").inc, using=using)


# --- Celery tasks --------------------------------------------------------------------------------

SWEEP_TASK = "stories.tasks.sweep_pipeline"
# Which id a task's first argument is, for its log lines.
_TASK_SUBJECTS = {IMPORT_TASK: "source_id", ADVANCE_TASK: "story_id"}
# Task id -> (log binding, start on the performance clock, start on the wall clock).
_running: dict[str, tuple[tuple, float, datetime]] = {}


@task_prerun.connect
def task_started(task_id: str, task, args=(), kwargs=None, **extra) -> None:
    fields = {"task_name": task.name, "task_id": task_id}
    subject = _TASK_SUBJECTS.get(task.name)
    if subject:
        value = (kwargs or {}).get(subject, args[0] if args else None)
        if value is not None:
            fields[subject] = value
    _running[task_id] = (logs.bind(**fields), time.perf_counter(), timezone.now())


@task_postrun.connect
def task_finished(task_id: str, task, args=(), kwargs=None, retval=None, state=None, **extra) -> None:
    started = _running.pop(task_id, None)
    if started is None:
        return
    binding, began, began_at = started
    try:
        metrics.TASK_DURATION.labels(task=task.name, state=state or "UNKNOWN").observe(time.perf_counter() - began)
        if task.name == ADVANCE_TASK:
            story_id = (kwargs or {}).get("story_id", args[0] if args else None)
            _observe_pipeline_steps(story_id, since=began_at)
        elif task.name == SWEEP_TASK and isinstance(retval, dict) and retval.get("interrupted_runs"):
            # The sweep closes dead workers' runs with one update, which sends no post_save.
            metrics.IMPORTS.labels(outcome=ImportRun.Outcome.INTERRUPTED).inc(retval["interrupted_runs"])
    finally:
        logs.unbind(binding)


@task_failure.connect
def task_failed(sender=None, exception: BaseException | None = None, **extra) -> None:
    metrics.TASK_FAILURES.labels(task=sender.name).inc()
    dependency = dependency_of(exception) if exception is not None else None
    if dependency:
        metrics.DEPENDENCY_ERRORS.labels(dependency=dependency, origin="task").inc()


def _observe_pipeline_steps(story_id: int | None, *, since: datetime) -> None:
    """Time the steps this task ran from what the pipeline recorded on the story (`pipeline_steps`)."""
    try:
        row = Story.objects.filter(pk=story_id).values_list("pipeline_steps", "label_fallback").first()
    except DatabaseError:
        logger.warning("Could not read the pipeline steps of story %s for /metrics.", story_id, exc_info=True)
        metrics.DEPENDENCY_ERRORS.labels(dependency="database", origin="task").inc()
        return
    if row is None:
        return
    steps, fallback = row
    for step, entry in (steps or {}).items():
        try:
            step_started = datetime.fromisoformat(entry["started"])
            step_ended = datetime.fromisoformat(entry["ended"])
        except (KeyError, TypeError, ValueError):
            continue
        if step_ended < since:
            continue  # an earlier task's step
        seconds = (step_ended - step_started).total_seconds()
        outcome = str(entry.get("outcome", "")).replace(" ", "_")
        metrics.PIPELINE_STEP_DURATION.labels(step=step, outcome=outcome).observe(seconds)
        if step == "label" and outcome == "done":
            metrics.LABELLING_DURATION.labels(fell_back=str(bool(fallback)).lower()).observe(seconds)


def use_django_logging(**kwargs) -> None:
    """Celery's setup_logging: keep Django's LOGGING (JSON lines with the task's ids) in workers and beat."""
    logging.config.dictConfig(settings.LOGGING)
