"""The moderation log names who reported a comment, and is called "moderation log entries"."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("comments", "0002_default_rules_and_moderators"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="moderationlog",
            options={
                "ordering": ["-created_at", "-pk"],
                "verbose_name": "moderation log entry",
                "verbose_name_plural": "moderation log entries",
            },
        ),
        migrations.AddField(
            model_name="moderationlog",
            name="reporter",
            field=models.ForeignKey(
                blank=True,
                help_text="The reader who reported the comment, for reports.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
