"""What several comment tests share: the moderators' permissions, the default rules, htmx headers, a
reader as the thread sees them, and requests released at once."""

import importlib
import threading
from collections.abc import Callable

from django.apps import apps
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.db import connection
from django.test import RequestFactory

from comments import moderation, selectors

_SEED = importlib.import_module("comments.migrations.0002_default_rules_and_moderators")
_STORIES_GROUP = importlib.import_module("stories.migrations.0003_moderators_group")


def grant_moderator_permissions(group: Group) -> None:
    """What the migrations give the Moderators group, given again: a transactional test may have
    flushed the group's permissions since the migrations ran."""
    for app_label, codename in [*_STORIES_GROUP.PERMISSIONS, *_SEED.PERMISSIONS]:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def seed_default_rules() -> None:
    _SEED.create_rules(apps, None)


def viewer(user, story) -> selectors.Viewer:
    """`user` (None: a visitor) as the story's thread sees them, under the active rules."""
    request = RequestFactory().get("/")
    request.user = user or AnonymousUser()
    return selectors.viewer_for(request, story, moderation.active_rules())


def htmx(**headers) -> dict:
    return {"HTTP_HX_REQUEST": "true", **headers}


def at_once(jobs: list[Callable[[], object]]) -> list[object]:
    """Run the jobs in threads released together, each with its own connection; return what each returned
    (or raised)."""
    barrier = threading.Barrier(len(jobs))
    results: list[object] = [None] * len(jobs)

    def run(index: int, job: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = job()
        except Exception as error:  # handed back to the test, which asserts on it
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n, job)) for n, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results
