"""Redis for the web process: Django's Redis cache, and the breaker every Redis client here shares.

While Redis is unreachable the cache answers as Django's DummyCache does: nothing is found, writes
are dropped, `add` succeeds. Sessions (cached_db) then come from the database, the moderation rules
are read per request, and the rate limits kept in the cache (allauth's, label reports') let requests
through. `redis_outage` is a circuit breaker: after a connection error or a timeout, Redis is left
alone for REDIS_OUTAGE_PAUSE_SECONDS, so a dead Redis costs a process one short timeout every few
seconds instead of one on every call; then the next call tries again, and when Redis answers
everything resumes. A key the cache could not write or delete during the outage is deleted once
Redis answers, so an entry kept from before the outage (a session since logged out) never comes back.

Django's client builds a new `redis.Redis` for every cache operation, and redis-py fills a table
of some 170 response callbacks in each new instance: about a third of a millisecond, more than the
round trip to Redis itself. A `redis.Redis` is safe to share between threads (each command takes a
connection from the pool), so one per pool is kept and reused.
"""

import logging
import threading
import time

import redis
from django.conf import settings
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.client import Pipeline

logger = logging.getLogger(__name__)

# Errors that mean Redis cannot be reached, as opposed to Redis refusing one command.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


class RedisSkipped(redis.ConnectionError):
    """Raised instead of calling Redis while the breaker is open."""


class RedisOutage:
    """Whether this process found Redis unreachable a moment ago (a circuit breaker)."""

    def __init__(self) -> None:
        self._retry_at = 0.0  # monotonic time from which Redis is tried again; 0 while it answers
        self._down_since = 0.0
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """True while Redis is left alone; the first call after the pause tries it again."""
        return self._retry_at > 0 and time.monotonic() < self._retry_at

    def call(self, command, *args, **kwargs):
        """Run one Redis command, or raise `RedisSkipped` at once while the breaker is open."""
        if self.is_open:
            raise RedisSkipped(f"Redis is left alone for {settings.REDIS_OUTAGE_PAUSE_SECONDS:g} s after failing")
        try:
            result = command(*args, **kwargs)
        except UNREACHABLE as error:
            self._failed(error)
            raise
        if self._retry_at:
            self._answered()
        return result

    def reset(self) -> None:
        """Forget any outage (for tests, which start each with Redis presumed up)."""
        self._retry_at = self._down_since = 0.0

    def _failed(self, error: Exception) -> None:
        with self._lock:
            first = not self._retry_at
            self._retry_at = time.monotonic() + settings.REDIS_OUTAGE_PAUSE_SECONDS
            if first:
                self._down_since = time.monotonic()
        if first:
            logger.warning(
                "Redis is unreachable (%s): pages are served without the cache, sessions come from the database, "
                "and Redis is tried again every %g s.",
                error,
                settings.REDIS_OUTAGE_PAUSE_SECONDS,
            )

    def _answered(self) -> None:
        with self._lock:
            if not self._retry_at:
                return
            down_for = time.monotonic() - self._down_since
            self._retry_at = self._down_since = 0.0
        logger.info("Redis answers again after %.1f s: the cache is back in use.", down_for)


redis_outage = RedisOutage()


class GuardedPipeline(Pipeline):
    def execute(self, raise_on_error: bool = True) -> list:
        return redis_outage.call(super().execute, raise_on_error)


class GuardedRedis(redis.Redis):
    """A Redis client whose commands go through `redis_outage`: they fail at once while Redis is known
    to be down, and a connection error or timeout opens the breaker for every client in the process."""

    def execute_command(self, *args, **options):
        return redis_outage.call(super().execute_command, *args, **options)

    def pipeline(self, transaction: bool = True, shard_hint=None) -> GuardedPipeline:
        return GuardedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def client_options() -> dict:
    """Socket timeouts for every Redis client of the web process: a request never waits long for Redis."""
    return {
        "socket_connect_timeout": settings.REDIS_CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": settings.REDIS_TIMEOUT_SECONDS,
    }


# Keys whose write or delete was dropped, remembered to be deleted when Redis answers again; past this
# many, the rest are left to expire with their timeouts (and the log says so).
_DROPPED_KEYS_LIMIT = 10_000
_NOT_FOUND = object()


class ReusingRedisCacheClient(RedisCacheClient):
    """Django's Redis cache client with one guarded `redis.Redis` per pool, degrading while Redis is away."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._client = GuardedRedis
        self._clients = {}
        self._dropped: set[str] = set()
        self._dropped_too_many = False

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client

    # Each operation answers as DummyCache does when Redis cannot.

    def add(self, key, value, timeout):
        return self._write([key], True, super().add, key, value, timeout)

    def get(self, key, default):
        return self._read(default, super().get, key, default)

    def set(self, key, value, timeout):
        self._write([key], None, super().set, key, value, timeout)

    def touch(self, key, timeout):
        return self._write([key], False, super().touch, key, timeout)

    def delete(self, key):
        return self._write([key], False, super().delete, key)

    def get_many(self, keys):
        return self._read({}, super().get_many, keys)

    def has_key(self, key):
        return self._read(False, super().has_key, key)

    def incr(self, key, delta):
        value = self._write([key], _NOT_FOUND, super().incr, key, delta)
        if value is _NOT_FOUND:
            raise ValueError(f"Key '{key}' not found")
        return value

    def set_many(self, data, timeout):
        self._write(list(data), None, super().set_many, data, timeout)

    def delete_many(self, keys):
        self._write(list(keys), None, super().delete_many, keys)

    def clear(self):
        return self._read(False, super().clear)

    def _read(self, fallback, operation, *args):
        return self._write([], fallback, operation, *args)

    def _write(self, keys: list[str], fallback, operation, *args):
        try:
            if self._dropped and not redis_outage.is_open:
                self._delete_dropped()
            return operation(*args)
        except redis.RedisError as error:
            if not isinstance(error, UNREACHABLE):  # an outage is logged once, by the breaker
                logger.warning("A cache operation failed; carrying on without the cache.", exc_info=True)
            self._drop(keys)
            return fallback

    def _drop(self, keys: list[str]) -> None:
        room = _DROPPED_KEYS_LIMIT - len(self._dropped)
        if len(keys) > room:
            self._dropped_too_many = True
        self._dropped.update(keys[: max(room, 0)])

    def _delete_dropped(self) -> None:
        keys = list(self._dropped)
        self.get_client(write=True).delete(*keys)
        self._dropped.difference_update(keys)
        logger.info("Deleted %d cache entries written or deleted while Redis was unreachable.", len(keys))
        if self._dropped_too_many:
            self._dropped_too_many = False
            logger.warning(
                "More than %d cache writes were dropped while Redis was unreachable; the entries not deleted "
                "since may be out of date until they expire.",
                _DROPPED_KEYS_LIMIT,
            )


class ReusingRedisCache(RedisCache):
    """The site's cache backend (CACHES in settings) whenever REDIS_URL is set."""

    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient
