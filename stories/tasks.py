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
    """Label the story, then find its picture: the picture search uses the labels."""
    from .labelling.service import label_story

    if label_story(story_id=story_id) is not None:
        choose_story_image_task.delay_on_commit(story_id)


@shared_task(bind=True, max_retries=3)
def choose_story_image_task(self, story_id: int) -> None:
    """Give a labelled story its picture; when the provider was rate-limited or down, try again later."""
    from .images.service import choose_story_image, retry_delay

    record = choose_story_image(story_id=story_id)
    delay = retry_delay(record)
    if delay is not None and self.request.retries < self.max_retries:
        raise self.retry(countdown=delay)


@shared_task
def refit_labeller_task(trigger: str = "nightly") -> int | None:
    """Refit the labeller on the corrections; a promoted version then looks for the labels it changes."""
    from .labelling import learning

    version = learning.refit_labeller(trigger=trigger)
    if version is None:
        return None
    if version.status == version.Status.PROMOTED:
        find_label_changes_task.delay_on_commit(version.pk)
    return version.pk


@shared_task
def find_label_changes_task(version_id: int) -> int:
    from .labelling import learning

    return len(learning.find_label_changes(version_id=version_id))
