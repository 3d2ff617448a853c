"""Comments close N days after publication, per source or section (a rule); readers' replies seen, for the
header's count of new ones."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("comments", "0005_recommendations_and_picks"),
        ("stories", "0012_story_original_url_optional"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="moderationrule",
            name="moderation_rule_kind_known",
        ),
        migrations.AddField(
            model_name="commenter",
            name="replies_seen_at",
            field=models.DateTimeField(
                default=django.utils.timezone.now,
                help_text="When the reader last opened “Your comments”; replies since then count as new in the header.",
                verbose_name="replies seen",
            ),
        ),
        migrations.AddField(
            model_name="moderationrule",
            name="section",
            field=models.ForeignKey(
                blank=True,
                help_text="Closing after N days: only stories in this section. Empty: any section.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="stories.section",
            ),
        ),
        migrations.AddField(
            model_name="moderationrule",
            name="source",
            field=models.ForeignKey(
                blank=True,
                help_text="Closing after N days: only stories from this source. Empty: any source.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="stories.source",
            ),
        ),
        migrations.AlterField(
            model_name="moderationrule",
            name="kind",
            field=models.CharField(
                choices=[
                    ("banned_words", "Banned words: reject the comment"),
                    ("suspect_words", "Suspect words: hold for review"),
                    ("links", "More than N links: hold for review"),
                    ("new_account", "A commenter's first N comments: hold for review"),
                    ("duplicate", "Same text again within the window: refuse"),
                    ("rate_limit", "More than N comments within the window: refuse"),
                    ("reports", "Reported by N readers: hide for review"),
                    ("hold_all", "Site default: pre-moderate every comment"),
                    ("close_all", "Site default: comments closed everywhere"),
                    ("close_after", "Close comments N days after publication"),
                ],
                max_length=20,
            ),
        ),
        migrations.AlterField(
            model_name="moderationrule",
            name="limit",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Links allowed; comments held for a new commenter; comments allowed in the window; readers' reports that hide a comment; days after publication before comments close.",
                null=True,
                verbose_name="N",
            ),
        ),
        migrations.AddConstraint(
            model_name="moderationrule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "kind__in",
                        [
                            "banned_words",
                            "suspect_words",
                            "links",
                            "new_account",
                            "duplicate",
                            "rate_limit",
                            "reports",
                            "hold_all",
                            "close_all",
                            "close_after",
                        ],
                    )
                ),
                name="moderation_rule_kind_known",
            ),
        ),
        migrations.AddConstraint(
            model_name="moderationrule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("kind", "close_after"),
                    models.Q(("section__isnull", True), ("source__isnull", True)),
                    _connector="OR",
                ),
                name="moderation_rule_scoped_only_when_closing",
            ),
        ),
        migrations.AddConstraint(
            model_name="moderationrule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("kind", "close_after"), _negated=True), ("limit__lte", 36500), _connector="OR"
                ),
                name="moderation_rule_closes_within_a_century",
            ),
        ),
    ]
