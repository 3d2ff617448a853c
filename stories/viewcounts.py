"""Counting story views once per reader per story per day, without a database write per request.

With Redis, a view costs one round trip (a Lua script: remember the reader for the day, bump a
pending counter) and a periodic task adds the pending counts to the stories. Without Redis (the
embedded defaults), the cache remembers the reader and the first view of the day is written
straight to the database.
"""

import hashlib
from datetime import date

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest

from newsreader.cache import GuardedRedis, client_options
from newsreader.clientaddr import client_address

from .models import Story

PENDING_KEY = "newsreader:views:pending"
FLUSHING_KEY = "newsreader:views:flushing"
_SEEN_SECONDS = 26 * 60 * 60

_RECORD_VIEW = """
if redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  return 1
end
return 0
"""

_redis_client: redis.Redis | None = None


def redis_client() -> redis.Redis | None:
    """The process's Redis client for view counts and cached pages; None without REDIS_URL. It shares the
    cache's breaker: while Redis is down its commands fail at once with a `redis.ConnectionError`."""
    global _redis_client
    if not settings.REDIS_URL:
        return None
    if _redis_client is None:
        _redis_client = GuardedRedis.from_url(settings.REDIS_URL, **client_options())
    return _redis_client


def reader_key(request: HttpRequest) -> str:
    """Who is reading, as a daily pseudonym: no address is stored in clear."""
    pseudonym = getattr(request, "reader_pseudonym", None)
    if pseudonym:
        # A signed-in reader's page rendered for them as a visitor's (stories.pagecache): still theirs.
        return pseudonym
    if request.user.is_authenticated:
        return user_key(request.user.pk)
    return visitor_key(request)


def user_key(user_id) -> str:
    """A signed-in reader's daily pseudonym."""
    return _daily_pseudonym(f"user:{user_id}")


def visitor_key(request: HttpRequest) -> str:
    """A signed-out reader's daily pseudonym, from the address and browser (needs no session)."""
    return _daily_pseudonym(f"visitor:{client_address(request)}:{request.META.get('HTTP_USER_AGENT', '')}")


def _daily_pseudonym(identity: str) -> str:
    material = f"{settings.VIEW_COUNT_SALT}:{date.today().isoformat()}:{identity}"
    return hashlib.blake2b(material.encode(), digest_size=12).hexdigest()


def _seen_key(story_id: int, reader: str) -> str:
    return f"newsreader:views:seen:{date.today().isoformat()}:{story_id}:{reader}"


def record_view(*, story_id: int, reader: str) -> bool:
    """Count one view of the story unless this reader was counted today. True when counted."""
    client = redis_client()
    if client is not None:
        try:
            return bool(client.eval(_RECORD_VIEW, 2, _seen_key(story_id, reader), PENDING_KEY, _SEEN_SECONDS, story_id))
        except redis.RedisError:
            # A view count is not worth failing a page for; the reader still gets the story.
            return False
    if not cache.add(_seen_key(story_id, reader), 1, _SEEN_SECONDS):
        return False
    Story.objects.filter(pk=story_id).update(view_count=F("view_count") + 1)
    return True


def queue_view(pipeline: redis.client.Pipeline, *, story_id: int, reader: str) -> None:
    """Add `record_view`'s work to a Redis pipeline, to share a round trip with other commands."""
    pipeline.eval(_RECORD_VIEW, 2, _seen_key(story_id, reader), PENDING_KEY, _SEEN_SECONDS, story_id)


def flush_pending_views() -> int:
    """Add the views counted in Redis to the stories. Returns how many views were written."""
    client = redis_client()
    if client is None:
        return 0
    # A flush that died half-way left its batch under FLUSHING_KEY: finish that one first.
    if not client.exists(FLUSHING_KEY):
        try:
            client.rename(PENDING_KEY, FLUSHING_KEY)
        except redis.ResponseError:
            return 0  # nothing pending
    pending = {int(story_id): int(count) for story_id, count in client.hgetall(FLUSHING_KEY).items()}
    with transaction.atomic():
        for story_id, count in sorted(pending.items()):
            Story.objects.filter(pk=story_id).update(view_count=F("view_count") + count)
    client.delete(FLUSHING_KEY)
    return sum(pending.values())
