"""The Celery application; its configuration lives in settings under the CELERY_ prefix."""

import os

from celery import Celery
from celery.signals import worker_process_init

from newsreader.longlived import keep_startup_objects_out_of_collections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsreader.settings")

app = Celery("newsreader")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze_startup_objects(**kwargs) -> None:
    keep_startup_objects_out_of_collections()
