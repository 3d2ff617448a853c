"""Health checks for load balancers and orchestrators: /healthz (the process answers) and /readyz
(the database, Redis and the Celery broker answer, and every migration is applied).

`HealthCheckMiddleware` answers both near the top of the stack, before the host check, sessions,
CSRF, the page cache and the views: a probe costs no session or cookie, is never cached or counted
as a view, and works from 127.0.0.1 whatever Host header it sends. Cheap enough to poll every few
seconds: the migration check, the only costly one, is not repeated once it has passed.
"""

import logging
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers
from kombu.exceptions import KombuError

from .celery import app

logger = logging.getLogger(__name__)

HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"
# Longest a probe waits for one dependency; a load balancer gives up on the whole probe soon after.
CHECK_TIMEOUT_SECONDS = 2
OK = "ok"
NOT_CONFIGURED = "not configured"
NOT_CHECKED = "not checked: the database is unavailable"

# Set once this process has seen every migration applied; migrations are not unapplied under a running site.
_migrations_applied = False


class CheckFailed(Exception):
    """A dependency is down; the message is what the probe's body says about it (no addresses or secrets)."""


def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up and answering; no dependency is touched."""
    return _json({"status": OK}, status=200)


def readyz(request: HttpRequest) -> HttpResponse:
    """200 when every dependency is ready, else 503 naming the ones that are not."""
    results = run_checks()
    failing = [name for name, result in results.items() if result not in (OK, NOT_CONFIGURED, NOT_CHECKED)]
    body = {"status": "unavailable" if failing else OK, "checks": results}
    if failing:
        body["failing"] = failing
    return _json(body, status=503 if failing else 200)


def run_checks() -> dict[str, str]:
    """Each readiness check by name, with "ok", "not configured", "not checked: …" or what is wrong."""
    results = {}
    for name, check in _CHECKS:
        if name == "migrations" and results["database"] != OK:
            results[name] = NOT_CHECKED
            continue
        try:
            results[name] = check()
        except CheckFailed as failure:
            results[name] = str(failure)
    return results


def check_database() -> str:
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        # A dead connection must not be reused by the next probe (or request) of this thread.
        connection.close_if_unusable_or_obsolete()
        logger.warning("Readiness: the database is unreachable: %s", error)
        raise CheckFailed("unreachable") from error
    return OK


def check_redis() -> str:
    if not settings.REDIS_URL:
        return NOT_CONFIGURED
    try:
        _redis_client(settings.REDIS_URL).ping()
    except redis.RedisError as error:
        logger.warning("Readiness: Redis is unreachable: %s", error)
        raise CheckFailed("unreachable") from error
    return OK


def check_migrations() -> str:
    global _migrations_applied
    if _migrations_applied:
        return OK
    try:
        unapplied = unapplied_migrations()
    except DatabaseError as error:
        logger.warning("Readiness: could not read the applied migrations: %s", error)
        raise CheckFailed("could not be read") from error
    if unapplied:
        logger.warning("Readiness: %d migrations are not applied: %s", len(unapplied), ", ".join(unapplied))
        raise CheckFailed(f"{len(unapplied)} not applied; run manage.py migrate")
    _migrations_applied = True
    return OK


def unapplied_migrations(*, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """The migrations on disk not yet applied to the database, as "app.name", in the order migrate would apply them."""
    executor = MigrationExecutor(connections[using])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, backwards in plan if not backwards]


def check_broker() -> str:
    # A fresh connection, not one from the pool: a pooled one that is already open says nothing about now.
    connection = app.connection_for_write(url=settings.CELERY_BROKER_URL, connect_timeout=CHECK_TIMEOUT_SECONDS)
    try:
        connection.ensure_connection(max_retries=0, timeout=CHECK_TIMEOUT_SECONDS)
        connection.default_channel  # noqa: B018  (opening the channel is what talks to the broker)
    except (KombuError, OSError, *connection.connection_errors, *connection.channel_errors) as error:
        logger.warning("Readiness: the Celery broker is unreachable: %s", error)
        raise CheckFailed("unreachable") from error
    finally:
        connection.release()
    return OK


_CHECKS: tuple[tuple[str, Callable[[], str]], ...] = (
    ("database", check_database),
    ("migrations", check_migrations),
    ("redis", check_redis),
    ("broker", check_broker),
)

_redis_clients: dict[str, redis.Redis] = {}


def _redis_client(url: str) -> redis.Redis:
    """One client (and connection pool) per URL and process, with timeouts short enough for a probe."""
    client = _redis_clients.get(url)
    if client is None:
        client = _redis_clients[url] = redis.Redis.from_url(
            url, socket_timeout=CHECK_TIMEOUT_SECONDS, socket_connect_timeout=CHECK_TIMEOUT_SECONDS
        )
    return client


def _json(body: dict, *, status: int) -> HttpResponse:
    response = JsonResponse(body, status=status)
    add_never_cache_headers(response)
    return response


_PROBES = {HEALTHZ_PATH: healthz, READYZ_PATH: readyz}


class HealthCheckMiddleware:
    """Answers /healthz and /readyz before the rest of the stack; sits right below SecurityMiddleware
    (whose HTTPS redirect SECURE_REDIRECT_EXEMPT lifts for these paths)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = _PROBES.get(request.path_info)
        if probe is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = _json({"status": "method not allowed"}, status=405)
            response["Allow"] = "GET, HEAD"
            return response
        return probe(request)
