"""What several comment tests share: the moderators' permissions, the default rules, htmx headers."""

import importlib

from django.apps import apps
from django.contrib.auth.models import Group, Permission

_SEED = importlib.import_module("comments.migrations.0002_default_rules_and_moderators")
_STORIES_GROUP = importlib.import_module("stories.migrations.0003_moderators_group")


def grant_moderator_permissions(group: Group) -> None:
    """What the migrations give the Moderators group, given again: a transactional test may have
    flushed the group's permissions since the migrations ran."""
    for app_label, codename in [*_STORIES_GROUP.PERMISSIONS, *_SEED.PERMISSIONS]:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def seed_default_rules() -> None:
    _SEED.create_rules(apps, None)


def htmx(**headers) -> dict:
    return {"HTTP_HX_REQUEST": "true", **headers}
