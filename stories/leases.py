"""Leases: locks held in the database for a short time and renewed while their holder works, so that a
worker killed mid-task keeps nothing for longer than one lease."""

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


def lease_seconds() -> int:
    """How long a lease lasts unrenewed: the fetch deadline plus a margin, so one slow fetch never
    outlives it, while a dead worker's lease lapses within a couple of minutes."""
    return settings.PIPELINE_LEASE_SECONDS


@contextmanager
def kept_alive(renew: Callable[[], None], *, every: float | None = None) -> Iterator[None]:
    """Call `renew` every `every` seconds (a third of a lease by default) while the block runs.

    The heartbeat runs in a thread with its own database connection, so a block busy in a slow fetch
    or a long parse still renews its leases; when the process dies, the heartbeat dies with it.
    """
    interval = every if every is not None else max(lease_seconds() / 3, 0.5)
    stop = threading.Event()

    def heartbeat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    renew()
                except DatabaseError:
                    logger.warning("Could not renew a lease; it lapses unless the next beat succeeds.", exc_info=True)
        finally:
            connection.close()

    thread = threading.Thread(target=heartbeat, name="lease-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)
