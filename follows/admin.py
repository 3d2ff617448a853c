"""Admin pages for follows, saved stories, digest settings and what digests carried (read-only)."""

from django.contrib import admin

from .models import DigestedStory, DigestSettings, Follow, SavedStory


@admin.register(Follow)
class FollowAdmin(admin.ModelAdmin):
    list_display = ["reader", "section", "tag", "region", "source", "created_at"]
    list_select_related = ["reader", "section", "tag", "region__parent", "source"]
    search_fields = ["reader__username", "reader__email"]
    raw_id_fields = ["reader", "section", "tag", "region", "source"]
    date_hierarchy = "created_at"


@admin.register(SavedStory)
class SavedStoryAdmin(admin.ModelAdmin):
    list_display = ["reader", "story", "saved_at"]
    list_select_related = ["reader", "story"]
    search_fields = ["reader__username", "story__title"]
    raw_id_fields = ["reader", "story"]


@admin.register(DigestSettings)
class DigestSettingsAdmin(admin.ModelAdmin):
    list_display = ["reader", "frequency", "hour", "time_zone", "next_due_at", "last_sent_at"]
    list_filter = ["frequency"]
    list_select_related = ["reader"]
    search_fields = ["reader__username", "reader__email"]
    readonly_fields = ["next_due_at", "last_sent_at", "updated_at"]
    raw_id_fields = ["reader"]


@admin.register(DigestedStory)
class DigestedStoryAdmin(admin.ModelAdmin):
    list_display = ["reader", "story", "sent_at"]
    list_select_related = ["reader", "story"]
    search_fields = ["reader__username", "story__title"]
    date_hierarchy = "sent_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
