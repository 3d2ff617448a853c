"""The starting moderation rules, a commenter record for every existing account, and what the
Moderators group needs to moderate comments."""

from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP_NAME = "Moderators"
PERMISSIONS = [
    ("comments", "view_comment"),
    ("comments", "change_comment"),
    ("comments", "view_report"),
    ("comments", "view_moderationlog"),
    ("comments", "view_commenter"),
    ("comments", "change_commenter"),
    ("comments", "view_moderationrule"),
    ("comments", "add_moderationrule"),
    ("comments", "change_moderationrule"),
]

RULES = [
    {"name": "Banned words", "kind": "banned_words", "is_active": False},
    {
        "name": "Spam words",
        "kind": "suspect_words",
        "words": "casino*\nviagra\ncialis\npayday loan*\ncrypto giveaway\nwork from home",
    },
    {"name": "More than 2 links", "kind": "links", "limit": 2},
    {"name": "A new commenter's first comment", "kind": "new_account", "limit": 1},
    {"name": "Same text within 10 minutes", "kind": "duplicate", "window_seconds": 600},
    {"name": "One comment per 15 seconds", "kind": "rate_limit", "limit": 1, "window_seconds": 15},
    {"name": "30 comments per hour", "kind": "rate_limit", "limit": 30, "window_seconds": 3600},
    {
        "name": "New accounts: one comment per minute",
        "kind": "rate_limit",
        "limit": 1,
        "window_seconds": 60,
        "new_accounts_only": True,
    },
    {
        "name": "New accounts: 5 comments per hour",
        "kind": "rate_limit",
        "limit": 5,
        "window_seconds": 3600,
        "new_accounts_only": True,
    },
    {"name": "Reported by 3 readers", "kind": "reports", "limit": 3},
    {"name": "Pre-moderate every comment on the site", "kind": "hold_all", "is_active": False},
    {"name": "Close comments on every story", "kind": "close_all", "is_active": False},
]


def create_rules(apps, schema_editor):
    ModerationRule = apps.get_model("comments", "ModerationRule")
    for rule in RULES:
        ModerationRule.objects.get_or_create(name=rule["name"], kind=rule["kind"], defaults=rule)


def remove_rules(apps, schema_editor):
    ModerationRule = apps.get_model("comments", "ModerationRule")
    for rule in RULES:
        ModerationRule.objects.filter(name=rule["name"], kind=rule["kind"]).delete()


def create_commenters(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    Commenter = apps.get_model("comments", "Commenter")
    have = set(Commenter.objects.values_list("user_id", flat=True))
    Commenter.objects.bulk_create(
        [Commenter(user_id=pk) for pk in User.objects.values_list("pk", flat=True) if pk not in have]
    )


def grant_moderators(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP_NAME)
    for app_label, codename in PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def revoke_moderators(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name=GROUP_NAME).first()
    if group is not None:
        codenames = [codename for _, codename in PERMISSIONS]
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="comments", codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [
        ("comments", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("stories", "0003_moderators_group"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_rules, remove_rules),
        migrations.RunPython(create_commenters, migrations.RunPython.noop),
        migrations.RunPython(grant_moderators, revoke_moderators),
    ]
