"""Readers recommend comments (once each, the count kept on the comment); moderators make comments editors'
picks, logged in the moderation log."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("comments", "0004_commenter_name_skeleton"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Recommendation",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "ordering": ["-created_at"],
            },
        ),
        migrations.AddField(
            model_name="comment",
            name="is_picked",
            field=models.BooleanField(default=False, verbose_name="editors' pick"),
        ),
        migrations.AddField(
            model_name="comment",
            name="picked_at",
            field=models.DateTimeField(blank=True, help_text="When a moderator made it an editors' pick.", null=True),
        ),
        migrations.AddField(
            model_name="comment",
            name="recommendation_count",
            field=models.PositiveIntegerField(
                default=0, help_text="Readers who recommend this comment.", verbose_name="recommendations"
            ),
        ),
        migrations.AlterField(
            model_name="moderationlog",
            name="action",
            field=models.CharField(
                choices=[
                    ("approved", "Approved"),
                    ("held", "Held for review"),
                    ("rejected", "Rejected"),
                    ("refused", "Refused"),
                    ("removed", "Removed"),
                    ("deleted", "Deleted by author"),
                    ("edited", "Edited"),
                    ("reported", "Reported"),
                    ("suspended", "Commenter suspended"),
                    ("banned", "Commenter banned"),
                    ("premoderated", "Commenter pre-moderated"),
                    ("unpremoderated", "Commenter no longer pre-moderated"),
                    ("reinstated", "Commenter reinstated"),
                    ("account_deleted", "Account deleted"),
                    ("picked", "Made an editors' pick"),
                    ("unpicked", "No longer an editors' pick"),
                ],
                max_length=20,
            ),
        ),
        migrations.AddIndex(
            model_name="comment",
            index=models.Index(
                condition=models.Q(("is_picked", True)), fields=["story", "picked_at"], name="comment_pick_idx"
            ),
        ),
        migrations.AddConstraint(
            model_name="comment",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("is_picked", True), ("picked_at__isnull", False)),
                    models.Q(("is_picked", False), ("picked_at__isnull", True)),
                    _connector="OR",
                ),
                name="comment_pick_has_time",
            ),
        ),
        migrations.AddField(
            model_name="recommendation",
            name="comment",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="recommendations",
                to="comments.comment",
            ),
        ),
        migrations.AddField(
            model_name="recommendation",
            name="reader",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="recommendations",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddIndex(
            model_name="recommendation",
            index=models.Index(fields=["reader", "comment"], name="recommendation_reader_idx"),
        ),
        migrations.AddConstraint(
            model_name="recommendation",
            constraint=models.UniqueConstraint(fields=("comment", "reader"), name="recommend_once_per_reader"),
        ),
    ]
