"""Celery tasks of the follows app: thin callers of the digest service."""

import dataclasses

from celery import shared_task

from . import digests


@shared_task
def send_due_digests_task() -> dict:
    return dataclasses.asdict(digests.send_due_digests())
