"""Each web process's own copies of the visitors' cached pages, so that a hit costs no round trip to Redis.

A page is copied here once it was found current in Redis, or rendered and kept there. A copy is answered
only while this process hears every invalidation: `stories.pagecache` publishes the scopes it bumps on a
channel in the same round trip as the bump, and a thread in each process listens and drops the copies
that depend on them. While that thread is not subscribed (starting, Redis away, reconnecting), no copy is
answered and all are dropped, as invalidations may have gone unheard. A copy lasts no longer than the
page it copies (`CachedPage.expires_at`), so a list's counts lag no more than with Redis alone.

The hits answered here count their story's views in this process; the same thread sends them to Redis
(`stories.viewcounts`) at least once a second, where they are counted once per reader per day as before.
"""

import atexit
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from django.conf import settings

from newsreader.cache import client_options

from . import viewcounts

if TYPE_CHECKING:
    from .pagecache import CachedPage

logger = logging.getLogger(__name__)

VIEWS_SENT_EVERY_SECONDS = 1.0
_RECONNECT_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)


def bumps_channel(client: redis.Redis) -> str:
    """The channel of one Redis database's invalidations: channels are shared by every database of a server."""
    return f"newsreader:pages:bumped:{client.connection_pool.connection_kwargs.get('db', 0)}"


def queue_announcement(pipeline: redis.client.Pipeline, scopes: list[str]) -> None:
    """Add the announcement of these bumped scopes to the pipeline that bumps them."""
    pipeline.publish(bumps_channel(pipeline), json.dumps(scopes))


@dataclass(frozen=True)
class _Copy:
    page: "CachedPage"
    scopes: frozenset[str]


class LocalCopies:
    """The copies of one process, and whether it can trust them (`listening`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.listening = False
        self._copies: OrderedDict[str, _Copy] = OrderedDict()
        # How many invalidations this process has heard of: a copy made from a lookup that one came after
        # may already be out of date, and is not kept.
        self._heard = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> "CachedPage | None":
        if not self.listening:
            return None
        with self._lock:
            found = self._copies.get(key)
            if found is None:
                return None
            if found.page.expires_at is None or found.page.expires_at <= time.time():
                del self._copies[key]
                return None
            self._copies.move_to_end(key)
            return found.page

    def mark(self) -> int:
        """Taken before the lookup whose page may be copied (`keep`)."""
        return self._heard

    def keep(self, key: str, page: "CachedPage", *, mark: int) -> None:
        """Copy a page found current by a lookup made after `mark`, unless an invalidation came since."""
        if not self.listening or page.expires_at is None or self.limit <= 0:
            return
        with self._lock:
            if self._heard != mark:
                return
            self._copies[key] = _Copy(page, frozenset(page.generations))
            self._copies.move_to_end(key)
            while len(self._copies) > self.limit:
                self._copies.popitem(last=False)

    def drop(self, scopes) -> None:
        """These scopes were bumped: drop every copy that depends on one of them."""
        bumped = set(scopes)
        with self._lock:
            self._heard += 1
            for key in [key for key, copy in self._copies.items() if not copy.scopes.isdisjoint(bumped)]:
                del self._copies[key]

    def drop_all(self) -> None:
        with self._lock:
            self._heard += 1
            self._copies.clear()

    def __len__(self) -> int:
        return len(self._copies)


class _ViewsToSend:
    """The views of stories answered from local copies, waiting to go to Redis."""

    def __init__(self) -> None:
        self._views: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def add(self, story_id: int, reader: str) -> None:
        with self._lock:
            self._views.append((story_id, reader))

    def discard(self) -> None:
        with self._lock:
            self._views = []

    def send(self) -> None:
        with self._lock:
            views, self._views = self._views, []
        client = viewcounts.redis_client()
        if not views or client is None:
            return
        try:
            pipeline = client.pipeline(transaction=False)
            for story_id, reader in views:
                viewcounts.queue_view(pipeline, story_id=story_id, reader=reader)
            pipeline.execute()
        except redis.RedisError as error:
            # As with a view counted in the request: not worth more than a log line.
            logger.warning("Could not count %d views of stories: %s", len(views), error)


copies = LocalCopies(limit=0)
views_to_send = _ViewsToSend()
_listener: "_Listener | None" = None
_start_lock = threading.Lock()


def enabled() -> bool:
    return bool(settings.REDIS_URL) and settings.PAGE_COPIES_PER_PROCESS > 0 and settings.VISITOR_PAGE_CACHE_SECONDS > 0


def page(key: str) -> "CachedPage | None":
    """This process's current copy of the page under `key`, if it has one it can trust."""
    if not enabled():
        return None
    _ensure_listening()
    return copies.get(key)


def mark() -> int:
    """Taken before a lookup whose page may then be copied (`keep`)."""
    return copies.mark()


def keep(key: str, page: "CachedPage", *, mark: int) -> None:
    if enabled():
        copies.keep(key, page, mark=mark)


def heard(scopes: list[str]) -> None:
    """This process bumped these scopes: its own copies go at once, before the announcement comes back."""
    copies.drop(scopes)


def count_view(story_id: int, reader: str) -> None:
    views_to_send.add(story_id, reader)


def forget_everything() -> None:
    """Drop every copy and every view not yet sent (for tests, which empty Redis between them)."""
    copies.drop_all()
    views_to_send.discard()


def send_views() -> None:
    """Send the views counted here to Redis now, instead of within VIEWS_SENT_EVERY_SECONDS."""
    views_to_send.send()


def _ensure_listening() -> None:
    """Start this process's listener once: again after a fork (threads do not survive one), or when it
    is to listen to another Redis."""
    global _listener, copies
    if _listener is not None and _listener.serves(settings.REDIS_URL):
        return
    with _start_lock:
        if _listener is not None and _listener.serves(settings.REDIS_URL):
            return
        if _listener is not None:
            _listener.stop()
        copies = LocalCopies(limit=settings.PAGE_COPIES_PER_PROCESS)
        _listener = _Listener(copies, settings.REDIS_URL)
        _listener.start()


def listener_name() -> str:
    """The name of this process's listening connection, as Redis lists its clients."""
    return f"newsreader-page-copies-{os.getpid()}"


class _Listener(threading.Thread):
    """Hears every invalidation for as long as the process lives, and sends the views counted meanwhile."""

    def __init__(self, copies: LocalCopies, url: str) -> None:
        super().__init__(name="page-copies-listener", daemon=True)
        self.copies = copies
        self.url = url
        self.pid = os.getpid()
        self._stopping = threading.Event()
        self._subscribed = False

    def serves(self, url: str) -> bool:
        return self.url == url and self.pid == os.getpid() and self.is_alive() and not self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()
        self.copies.listening = False
        self.copies.drop_all()

    def run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            self._subscribed = False
            try:
                self._listen()
            except redis.RedisError as error:
                if self._subscribed:
                    logger.info("Stopped hearing page invalidations (%s): pages come from Redis meanwhile.", error)
            except Exception:
                logger.exception("The listener for page invalidations failed; it starts again.")
            attempt = 0 if self._subscribed else attempt + 1
            self.copies.listening = False
            self.copies.drop_all()
            self._stopping.wait(_RECONNECT_SECONDS[min(attempt, len(_RECONNECT_SECONDS) - 1)])

    def _listen(self) -> None:
        client = redis.Redis.from_url(
            self.url, **client_options(), health_check_interval=10, client_name=listener_name()
        )
        subscription = client.pubsub()
        try:
            subscription.subscribe(bumps_channel(client))
            sent_at = time.monotonic()
            while not self._stopping.is_set():
                message = subscription.get_message(timeout=VIEWS_SENT_EVERY_SECONDS)
                if message is not None and message["type"] == "subscribe":
                    # Whatever was bumped before now is in the generations the next lookups read.
                    self.copies.drop_all()
                    self.copies.listening = self._subscribed = True
                elif message is not None and message["type"] == "message":
                    self.copies.drop(json.loads(message["data"]))
                if time.monotonic() - sent_at >= VIEWS_SENT_EVERY_SECONDS:
                    views_to_send.send()
                    sent_at = time.monotonic()
        finally:
            self.copies.listening = False
            subscription.close()
            client.close()


atexit.register(views_to_send.send)
