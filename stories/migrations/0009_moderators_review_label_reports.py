"""Moderators may review readers' label reports and see, refit and relabel from the labeller's versions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

PERMISSIONS = [
    ("stories", "view_labelreport"),
    ("stories", "change_labelreport"),
    ("stories", "view_labellerversion"),
    ("stories", "change_labellerversion"),
]


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Moderators")
    for app_label, codename in PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="Moderators").first()
    if group:
        group.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label="stories", codename__in=[codename for _, codename in PERMISSIONS]
            )
        )


class Migration(migrations.Migration):
    dependencies = [("stories", "0008_learning")]

    operations = [migrations.RunPython(grant, revoke)]
