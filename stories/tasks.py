"""Celery tasks of the stories app: thin callers of the services."""

from celery import shared_task

from . import viewcounts
from .importing import service


@shared_task
def flush_story_views() -> int:
    return viewcounts.flush_pending_views()


@shared_task
def enqueue_due_sources() -> int:
    return service.enqueue_due_imports()


@shared_task(
    autoretry_for=(service.TransientImportError,),
    retry_backoff=30,
    retry_backoff_max=15 * 60,
    retry_jitter=True,
    max_retries=3,
)
def import_source_task(source_id: int) -> int | None:
    run = service.import_source(source_id=source_id)
    return run.pk if run else None


@shared_task(
    autoretry_for=(service.TransientImportError,),
    retry_backoff=30,
    retry_jitter=True,
    max_retries=3,
)
def extract_full_text_task(story_id: int) -> None:
    service.extract_full_text(story_id=story_id)
    label_story_task.delay(story_id)


@shared_task
def label_story_task(story_id: int) -> None:
    from .labelling.service import label_story

    label_story(story_id=story_id)
