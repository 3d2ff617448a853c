"""Celery tasks of the stories app: thin callers of the services."""

import dataclasses

from celery import shared_task

from . import pipeline, viewcounts


@shared_task
def flush_story_views() -> int:
    return viewcounts.flush_pending_views()


@shared_task
def sweep_pipeline() -> dict:
    return dataclasses.asdict(pipeline.sweep())


@shared_task
def import_source_task(source_id: int) -> int | None:
    run = pipeline.import_source(source_id=source_id)
    return run.pk if run else None


@shared_task
def advance_story_task(story_id: int) -> str | None:
    return pipeline.advance_story(story_id=story_id)


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
