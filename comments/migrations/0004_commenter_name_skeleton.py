"""Each commenter keeps the confusable skeleton of their public name, so a look-alike name is found by one
indexed lookup; existing readers get theirs (and a commenter record, if they had none) here."""

from django.conf import settings
from django.db import migrations, models

from comments.models import public_name_skeleton

BATCH = 1000


def store_name_skeletons(apps, schema_editor) -> None:
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    Commenter = apps.get_model("comments", "Commenter")
    users = User.objects.order_by("pk").values_list("pk", "username")
    for start in range(0, users.count(), BATCH):
        batch = dict(users[start : start + BATCH])
        existing = Commenter.objects.in_bulk(list(batch))
        for pk, commenter in existing.items():
            commenter.name_skeleton = public_name_skeleton(batch[pk])
        Commenter.objects.bulk_update(existing.values(), ["name_skeleton"])
        Commenter.objects.bulk_create(
            Commenter(user_id=pk, name_skeleton=public_name_skeleton(name))
            for pk, name in batch.items()
            if pk not in existing
        )


class Migration(migrations.Migration):
    dependencies = [
        ("comments", "0003_moderation_log_names_reporter"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="commenter",
            name="name_skeleton",
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=600),
        ),
        migrations.RunPython(store_name_skeletons, migrations.RunPython.noop),
    ]
