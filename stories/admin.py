"""Django admin for sources, sections, tags, regions and stories; label corrections, readers' label reports
and the versions of what the labeller learnt from corrections."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from . import pipeline, status
from .images.admin import ImageCandidateInline, StoryImageInline, replace_or_remove_picture
from .importing.opml import OPMLError, export_opml, import_opml
from .labelling import learning
from .labelling.service import label_snapshot, record_corrections
from .models import (
    ImportRun,
    LabelCorrection,
    LabellerVersion,
    LabelReport,
    Region,
    Section,
    Source,
    Story,
    StoryRevision,
    Tag,
)
from .reports import confirm_label_reports, dismiss_label_reports


class ImportRunInline(admin.TabularInline):
    model = ImportRun
    extra = 0
    max_num = 0
    can_delete = False
    fields = readonly_fields = [
        "started_at",
        "finished_at",
        "outcome",
        "http_status",
        "new_count",
        "updated_count",
        "unchanged_count",
        "rejected_count",
        "error",
    ]
    ordering = ["-started_at"]


class OPMLUploadForm(forms.Form):
    file = forms.FileField(label="OPML file", help_text="Feeds already known are skipped.")


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "is_active",
        "last_success_at",
        "last_status",
        "consecutive_errors",
        "short_last_error",
        "next_fetch_at",
        "items_per_day",
    ]
    list_filter = ["is_active", "full_text", "publish_mode", "may_show_images"]
    search_fields = ["name", "feed_url", "homepage_url"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["default_section", "region_hint"]
    actions = ["import_now", "export_as_opml", "reactivate"]
    readonly_fields = [
        "last_fetched_at",
        "last_success_at",
        "last_status",
        "consecutive_errors",
        "last_error",
        "items_per_day",
        "min_interval_minutes",
        "key_strategy",
        "etag",
        "last_modified",
    ]
    fieldsets = [
        (None, {"fields": ["name", "slug", "homepage_url", "feed_url", "is_active", "deactivated_reason"]}),
        (
            "Importing",
            {
                "fields": [
                    "full_text",
                    "default_section",
                    "region_hint",
                    "publish_mode",
                    "fetch_interval_minutes",
                    "attribution",
                    "licence_note",
                    "may_show_images",
                ]
            },
        ),
        (
            "Health",
            {
                "fields": [
                    "last_fetched_at",
                    "last_success_at",
                    "last_status",
                    "consecutive_errors",
                    "last_error",
                    "next_fetch_at",
                    "items_per_day",
                    "min_interval_minutes",
                    "key_strategy",
                    "etag",
                    "last_modified",
                ]
            },
        ),
    ]
    inlines = [ImportRunInline]
    change_list_template = "admin/stories/source/change_list.html"

    @admin.display(description="last error")
    def short_last_error(self, source: Source) -> str:
        return source.last_error[:80]

    @admin.action(description="Import now", permissions=["change"])
    def import_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = 0
        for source in queryset:
            pipeline.request_import(source=source)
            count += 1
        self.message_user(request, f"{count} sources queued for import; refresh in a minute.", messages.SUCCESS)

    @admin.action(description="Reactivate and fetch soon", permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.update(
            is_active=True, deactivated_reason="", consecutive_errors=0, next_fetch_at=timezone.now()
        )
        self.message_user(request, f"{count} sources reactivated.", messages.SUCCESS)

    @admin.action(description="Export selected as OPML", permissions=["view"])
    def export_as_opml(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        response = HttpResponse(export_opml(queryset), content_type="text/x-opml; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="newsreader-sources.opml"'
        return response

    def get_urls(self):
        return [
            path("import-opml/", self.admin_site.admin_view(self.import_opml_view), name="stories_source_import_opml"),
            *super().get_urls(),
        ]

    def import_opml_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            return redirect("admin:stories_source_changelist")
        form = OPMLUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                created, skipped = import_opml(form.cleaned_data["file"].read())
            except OPMLError as error:
                form.add_error("file", str(error))
            else:
                self.message_user(
                    request,
                    f"{len(created)} sources added, {skipped} skipped (already known or not http).",
                    messages.SUCCESS,
                )
                return redirect("admin:stories_source_changelist")
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Import sources from OPML",
            "opts": self.model._meta,
        }
        return render(request, "admin/stories/source/import_opml.html", context)


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = [
        "source",
        "started_at",
        "duration",
        "outcome",
        "http_status",
        "new_count",
        "updated_count",
        "unchanged_count",
        "rejected_count",
    ]
    list_filter = ["outcome", ("source", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["source"]
    search_fields = ["source__name", "error"]
    date_hierarchy = "started_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(LabelCorrection)
class LabelCorrectionAdmin(admin.ModelAdmin):
    list_display = ["story", "field", "value", "previous_value", "corrected_by", "created_at", "withdrawn_at"]
    list_filter = [
        "field",
        ("withdrawn_at", admin.EmptyFieldListFilter),
        ("corrected_by", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["story", "corrected_by"]
    search_fields = ["story__title"]
    readonly_fields = ["story", "field", "value", "previous_value", "corrected_by", "created_at", "withdrawn_at"]
    actions = ["withdraw"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Withdraw selected corrections", permissions=["change"])
    def withdraw(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.filter(withdrawn_at__isnull=True).update(withdrawn_at=timezone.now())
        transaction.on_commit(learning.refit_if_due)
        self.message_user(
            request,
            f"{count} corrections withdrawn; relabel the stories to apply. The labeller's next refit forgets them.",
            messages.SUCCESS,
        )


class StoryRevisionInline(admin.TabularInline):
    model = StoryRevision
    extra = 0
    max_num = 0
    can_delete = False
    fields = readonly_fields = ["created_at", "changed_fields", "title"]


@admin.register(Section)
class SectionAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "iptc_code", "position"]
    list_editable = ["position"]
    search_fields = ["name", "iptc_code"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "slug", "parent"]
    list_filter = [("parent", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["parent"]
    search_fields = ["name", "slug", "parent__name"]
    autocomplete_fields = ["parent"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Story)
class StoryAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "source",
        "section",
        "region",
        "status",
        "published_at",
        "ai_labelled",
        "view_count",
        "comment_count",
    ]
    list_filter = [
        "status",
        "section",
        "source",
        "ai_labelled",
        "ai_generated",
        "pipeline_state",
        "comments_mode",
        "published_at",
    ]
    list_select_related = ["source", "section", "region__parent"]
    search_fields = ["title", "slug", "source__name", "original_url"]
    autocomplete_fields = ["source", "section", "region", "tags"]
    date_hierarchy = "published_at"
    readonly_fields = [
        "view_count",
        "comment_count",
        "reading_minutes",
        "created_at",
        "updated_at",
        "pipeline_state",
        "pipeline_due_at",
        "pipeline_attempts",
        "pipeline_error",
        "pipeline_steps",
    ]
    actions = ["publish", "hide", "close_comments", "open_comments", "relabel", replace_or_remove_picture]
    fieldsets = [
        (None, {"fields": ["title", "slug", "dek", "body_html", "source", "original_url", "author", "published_at"]}),
        ("Labels", {"fields": ["section", "region", "tags", "language", "ai_labelled", "ai_generated", "labeller"]}),
        (
            "Image",
            {
                "fields": [
                    "image_url",
                    "image_width",
                    "image_height",
                    "image_alt",
                    "image_credit",
                    "image_credit_url",
                    "image_provider",
                    "image_provider_url",
                ]
            },
        ),
        ("Publishing", {"fields": ["status", "comments_mode"]}),
        ("Figures", {"fields": ["view_count", "comment_count", "reading_minutes", "created_at", "updated_at"]}),
        (
            "Background pipeline",
            {
                "classes": ["collapse"],
                "fields": [
                    "pipeline_state",
                    "pipeline_due_at",
                    "pipeline_attempts",
                    "pipeline_error",
                    "pipeline_steps",
                ],
            },
        ),
    ]
    prepopulated_fields = {"slug": ["title"]}
    inlines = [StoryRevisionInline, StoryImageInline, ImageCandidateInline]

    def save_model(self, request: HttpRequest, story: Story, form, change: bool) -> None:
        # The label as it was before this edit, to tell what the moderator corrected; kept on this request's
        # form, never on the admin instance that every request shares.
        form.label_before = label_snapshot(Story.objects.get(pk=story.pk)) if change else None
        super().save_model(request, story, form, change)

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if getattr(form, "label_before", None) is not None:
            corrections = record_corrections(story=form.instance, previous=form.label_before, moderator=request.user)
            if corrections:
                fields = ", ".join(correction.get_field_display().lower() for correction in corrections)
                self.message_user(request, f"Corrected {fields}: kept when the story is relabelled.", messages.INFO)

    @admin.action(description="Relabel selected stories", permissions=["change"])
    def relabel(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = pipeline.relabel(list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request, f"{count} stories queued for labelling; moderators' corrections are kept.", messages.SUCCESS
        )

    def _set(self, request: HttpRequest, queryset: QuerySet, message: str, **values) -> None:
        count = 0
        for story in queryset:
            for field, value in values.items():
                setattr(story, field, value)
            story.save(update_fields=[*values, "updated_at"])
            count += 1
        self.message_user(request, message.format(count=count), messages.SUCCESS)

    @admin.action(description="Publish selected stories", permissions=["change"])
    def publish(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set(request, queryset, "{count} stories published.", status=Story.Status.PUBLISHED)

    @admin.action(description="Hide selected stories from readers", permissions=["change"])
    def hide(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set(request, queryset, "{count} stories hidden.", status=Story.Status.HIDDEN)

    @admin.action(description="Close comments on selected stories", permissions=["change"])
    def close_comments(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set(request, queryset, "Comments closed on {count} stories.", comments_mode=Story.CommentsMode.CLOSED)

    @admin.action(description="Open comments on selected stories", permissions=["change"])
    def open_comments(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set(request, queryset, "Comments opened on {count} stories.", comments_mode=Story.CommentsMode.OPEN)


@admin.register(LabelReport)
class LabelReportAdmin(admin.ModelAdmin):
    """Readers' reports of wrong labels: the stories most readers reported first. Confirming applies the
    reader's suggestion as your correction; dismissing leaves the story as it is."""

    list_display = [
        "story",
        "kind",
        "what_the_reader_says",
        "readers",
        "reporter",
        "created_at",
        "status",
        "handled_by",
    ]
    list_filter = ["status", "kind"]
    list_select_related = ["story__section", "reporter", "tag", "suggested_section", "handled_by"]
    search_fields = ["story__title", "suggestion"]
    readonly_fields = [
        "story",
        "reporter",
        "kind",
        "tag",
        "suggested_section",
        "suggestion",
        "status",
        "created_at",
        "handled_by",
        "handled_at",
        "correction",
    ]
    actions = ["confirm", "dismiss"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Annotated before ordering: the queue is ordered by how many readers reported the story.
        return LabelReport.objects.with_reader_counts().order_by(*self.get_ordering(request))

    def get_ordering(self, request: HttpRequest) -> list[str]:
        return ["-readers", "-created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="readers reporting", ordering="readers")
    def readers(self, report: LabelReport) -> int:
        return report.readers

    @admin.display(description="what the reader says")
    def what_the_reader_says(self, report: LabelReport) -> str:
        if report.kind == LabelReport.Kind.SECTION:
            current = report.story.section.name if report.story.section_id else "no section"
            said = f"{current} → {report.suggested_section.name if report.suggested_section_id else '(no suggestion)'}"
        else:
            said = f"tag {report.tag.name if report.tag_id else '(deleted)'} is wrong"
        return f"{said}; “{report.suggestion}”" if report.suggestion else said

    @admin.action(description="Confirm selected reports (correct the labels)", permissions=["change"])
    def confirm(self, request: HttpRequest, queryset: QuerySet) -> None:
        outcome = confirm_label_reports(reports=queryset.select_related("story"), moderator=request.user)
        self.message_user(
            request,
            f"{outcome.confirmed} reports confirmed; {len(outcome.corrections)} corrections recorded "
            "and kept when the stories are relabelled.",
            messages.SUCCESS,
        )
        for reason in outcome.skipped:
            self.message_user(request, f"Not confirmed: {reason}.", messages.WARNING)

    @admin.action(description="Dismiss selected reports (the labels stay)", permissions=["change"])
    def dismiss(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = dismiss_label_reports(reports=queryset, moderator=request.user)
        self.message_user(request, f"{count} reports dismissed; the labels are unchanged.", messages.SUCCESS)


@admin.register(LabellerVersion)
class LabellerVersionAdmin(admin.ModelAdmin):
    """What the labeller learnt from corrections, version by version, and per section where it stands."""

    list_display = [
        "number",
        "status",
        "created_at",
        "trigger",
        "correction_count",
        "held_out_score",
        "compared_score",
        "changed_stories",
        "refusal_reason",
    ]
    list_filter = ["status", "trigger"]
    change_list_template = "admin/stories/labellerversion/change_list.html"
    readonly_fields = [
        "number",
        "status",
        "created_at",
        "data_as_of",
        "promoted_at",
        "trigger",
        "refusal_reason",
        "held_out_score",
        "compared_score",
        "correction_count",
        "sections",
        "relabel_progress",
        "label_changes_list",
        "labelled_by",
        "basis",
        "fit_seconds",
    ]
    fields = readonly_fields
    actions = ["relabel_changed"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="held-out accuracy")
    def held_out_score(self, version: LabellerVersion) -> str:
        if version.held_out_accuracy is None:
            return "no held-out corrections"
        return f"{version.held_out_accuracy:.3f} on {version.held_out_count}"

    @admin.display(description="compared with")
    def compared_score(self, version: LabellerVersion) -> str:
        if version.predecessor_accuracy is None:
            return version.compared_with
        return f"{version.compared_with}: {version.predecessor_accuracy:.3f}"

    @admin.display(description="stories it changes")
    def changed_stories(self, version: LabellerVersion) -> int:
        return len(version.label_changes)

    @admin.display(description="per section")
    def sections(self, version: LabellerVersion) -> str:
        rows = [
            (
                slug,
                stats.get("examples", 0),
                stats.get("counted", 0),
                stats.get("weight", 0) if stats.get("speaks") else "silent",
                f"{stats.get('hits', 0)} of {stats.get('held_out', 0)}",
            )
            for slug, stats in version.section_stats.items()
        ]
        if not rows:
            return "No corrections."
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            "<table><thead><tr><th>section</th><th>corrections</th><th>counted</th><th>weight</th>"
            "<th>held out: right</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    @admin.display(description="relabelled")
    def relabel_progress(self, version: LabellerVersion) -> str:
        ids = [story_id for story_id, _, _ in version.label_changes]
        if not ids:
            return "No story to relabel."
        done = Story.objects.filter(pk__in=ids, labeller=version.labelled_by).count()
        return format_html(
            '<progress value="{}" max="{}"></progress> {} of {} stories relabelled by this version',
            done,
            len(ids),
            done,
            len(ids),
        )

    @admin.display(description="stories it changes")
    def label_changes_list(self, version: LabellerVersion) -> str:
        shown = version.label_changes[:200]
        if not shown:
            return "None among the recent stories."
        titles = dict(Story.objects.filter(pk__in=[story_id for story_id, _, _ in shown]).values_list("pk", "title"))
        rows = [
            (reverse("admin:stories_story_change", args=[story_id]), titles.get(story_id, story_id), old, new)
            for story_id, old, new in shown
        ]
        more = len(version.label_changes) - len(shown)
        return format_html(
            "<ul>{}</ul>{}",
            format_html_join("", '<li><a href="{}">{}</a>: {} → {}</li>', rows),
            f"and {more} more" if more > 0 else "",
        )

    def changelist_view(self, request: HttpRequest, extra_context=None):
        current = LabellerVersion.objects.current()
        extra_context = {
            **(extra_context or {}),
            "current_version": current,
            "section_overview": learning.section_overview(current),
            "can_change": self.has_change_permission(request),
        }
        return super().changelist_view(request, extra_context=extra_context)

    def get_urls(self):
        return [
            path("refit/", self.admin_site.admin_view(self.refit_view), name="stories_labellerversion_refit"),
            path(
                "<int:pk>/relabel/",
                self.admin_site.admin_view(self.relabel_view),
                name="stories_labellerversion_relabel",
            ),
            *super().get_urls(),
        ]

    def _relabel(self, request: HttpRequest, version: LabellerVersion) -> None:
        if version.status != LabellerVersion.Status.PROMOTED:
            self.message_user(
                request, f"Version {version.number} does not label stories; nothing was queued.", messages.WARNING
            )
            return
        count = pipeline.relabel([story_id for story_id, _, _ in version.label_changes])
        self.message_user(
            request,
            f"{count} stories queued for relabelling by version {version.number}; moderators' corrections are kept.",
            messages.SUCCESS,
        )

    @admin.action(description="Relabel the stories this version changes", permissions=["change"])
    def relabel_changed(self, request: HttpRequest, queryset: QuerySet) -> None:
        for version in queryset:
            self._relabel(request, version)

    @method_decorator(require_POST)
    def relabel_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        version = get_object_or_404(LabellerVersion, pk=pk)
        if self.has_change_permission(request, version):
            self._relabel(request, version)
        return redirect("admin:stories_labellerversion_change", version.pk)

    @method_decorator(require_POST)
    def refit_view(self, request: HttpRequest) -> HttpResponse:
        if self.has_change_permission(request):
            from .tasks import refit_labeller_task

            refit_labeller_task.delay_on_commit(trigger=LabellerVersion.Trigger.MODERATOR)
            self.message_user(
                request, "Refit queued: the new version appears here in a minute, promoted or not.", messages.SUCCESS
            )
        return redirect("admin:stories_labellerversion_changelist")


def system_status_view(request: HttpRequest) -> HttpResponse:
    """Staff's view of the whole system: workers, beat, the queue, the pipeline's backlog, failing sources."""
    context = {**admin.site.each_context(request), "title": "System status", "status": status.system_status()}
    return render(request, "admin/system_status.html", context)
