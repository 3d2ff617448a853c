"""Celery tasks of the stories app: thin callers of the services."""

from celery import shared_task

from . import viewcounts


@shared_task
def flush_story_views() -> int:
    return viewcounts.flush_pending_views()
