"""Django admin for sources, sections, tags, regions and stories."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import Region, Section, Source, Story, Tag


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "feed_url", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "feed_url", "homepage_url"]
    prepopulated_fields = {"slug": ["name"]}


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
    list_filter = ["status", "section", "source", "ai_labelled", "ai_generated", "comments_mode", "published_at"]
    list_select_related = ["source", "section", "region__parent"]
    search_fields = ["title", "slug", "source__name", "original_url"]
    autocomplete_fields = ["source", "section", "region", "tags"]
    date_hierarchy = "published_at"
    readonly_fields = ["view_count", "comment_count", "reading_minutes", "created_at", "updated_at"]
    actions = ["publish", "hide", "close_comments", "open_comments"]
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
    ]
    prepopulated_fields = {"slug": ["title"]}

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
