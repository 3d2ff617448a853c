"""Admin for story pictures: what the pipeline decided and why, and a page where a moderator replaces or
removes a story's picture, choosing among the candidates found for it."""

from django.contrib import admin, messages
from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html

from stories import pipeline
from stories.models import Story

from . import service
from .models import ImageCandidate, StoryImage
from .providers import provider_label
from .variants import StoredImage

MODERATE_PERMISSION = "stories.change_story"


def chooser_url(story: Story) -> str:
    return reverse("admin:stories_storyimage_choose", args=[story.pk])


class _ShownWithStoryMixin:
    """Moderators see these with the story they moderate; they never edit them directly."""

    extra = 0
    max_num = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("stories.view_story")

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class StoryImageInline(_ShownWithStoryMixin, admin.StackedInline):
    model = StoryImage
    verbose_name_plural = "picture"
    fields = readonly_fields = [
        "choose_link",
        "state",
        "reason",
        "retry_at",
        "moderator_locked",
        "decided_by",
        "decided_at",
        "search_provider",
        "search_query",
        "searched_at",
        "search_requests",
    ]

    @admin.display(description="moderate")
    def choose_link(self, record: StoryImage) -> str:
        return format_html('<a href="{}">Replace or remove the picture…</a>', chooser_url(record.story))


class ImageCandidateInline(_ShownWithStoryMixin, admin.TabularInline):
    model = ImageCandidate
    verbose_name_plural = "picture candidates"
    fields = readonly_fields = ["is_chosen", "provider", "photo_link", "photographer", "alt", "size", "failure"]
    ordering = ["-is_chosen", "rank", "pk"]

    @admin.display(description="photo")
    def photo_link(self, candidate: ImageCandidate) -> str:
        return format_html('<a href="{}" rel="noopener" target="_blank">{}</a>', candidate.page_url or "#", candidate)

    @admin.display(description="size")
    def size(self, candidate: ImageCandidate) -> str:
        return f"{candidate.width} x {candidate.height}" if candidate.width else ""


@admin.action(description="Replace or remove the picture…", permissions=["change"])
def replace_or_remove_picture(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet):
    stories = list(queryset[:2])
    if len(stories) != 1:
        modeladmin.message_user(request, "Select exactly one story to choose its picture.", messages.WARNING)
        return None
    return redirect(chooser_url(stories[0]))


@admin.register(StoryImage)
class StoryImageAdmin(admin.ModelAdmin):
    list_display = ["story", "state", "short_reason", "moderator_locked", "search_provider", "search_requests"]
    list_filter = ["state", "moderator_locked", "search_provider"]
    list_select_related = ["story"]
    search_fields = ["story__title", "reason", "search_query"]
    readonly_fields = [field.name for field in StoryImage._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="reason")
    def short_reason(self, record: StoryImage) -> str:
        return record.reason[:100]

    def get_urls(self):
        return [
            path(
                "<int:story_id>/choose/",
                self.admin_site.admin_view(self.choose_view),
                name="stories_storyimage_choose",
            ),
            *super().get_urls(),
        ]

    def choose_view(self, request: HttpRequest, story_id: int) -> HttpResponse:
        """Show the candidates; on POST, carry out the moderator's choice and say what happened."""
        if not request.user.has_perm(MODERATE_PERMISSION):
            return redirect("admin:index")
        story = get_object_or_404(Story.objects.select_related("source"), pk=story_id)
        if request.method == "POST":
            self._carry_out(request, story)
            return redirect(request.get_full_path())
        candidates = list(story.image_candidates.order_by("-is_chosen", "rank", "pk"))
        context = {
            **self.admin_site.each_context(request),
            "opts": Story._meta,
            "title": f"Picture of “{story.title}”",
            "story": story,
            "record": StoryImage.objects.filter(story=story).first(),
            "candidates": [(candidate, self._describe(candidate)) for candidate in candidates],
            "preview": self._preview(candidates),
        }
        return render(request, "admin/stories/storyimage/choose.html", context)

    def _carry_out(self, request: HttpRequest, story: Story) -> None:
        action = request.POST.get("action")
        try:
            if action == "show":
                candidate = get_object_or_404(ImageCandidate, pk=request.POST.get("candidate"), story=story)
                service.replace_story_image(story=story, candidate=candidate, moderator=request.user)
                self.message_user(request, f"The story now shows {candidate}; later runs keep it.", messages.SUCCESS)
            elif action == "remove":
                service.remove_story_image(story=story, moderator=request.user)
                self.message_user(request, "The story shows no picture now; later runs keep it so.", messages.SUCCESS)
            elif action == "search":
                found = service.search_again(story=story, moderator=request.user)
                self.message_user(request, f"{found} new candidates found.", messages.SUCCESS)
            elif action == "release":
                service.release_story_image(story=story)
                pipeline.resume_after(Story.PipelineState.LABELLED, [story.pk])
                self.message_user(request, "The pipeline will choose this story's picture again.", messages.SUCCESS)
            else:
                self.message_user(request, "Choose what to do with the picture.", messages.WARNING)
        except service.ImageChoiceError as error:
            self.message_user(request, str(error), messages.ERROR)

    @staticmethod
    def _describe(candidate: ImageCandidate) -> str:
        source = "The source's own picture" if candidate.from_source else provider_label(candidate.provider)
        parts = [source, f"by {candidate.photographer}" if candidate.photographer else ""]
        if candidate.width:
            parts.append(f"({candidate.width} x {candidate.height})")
        return " ".join(part for part in parts if part)

    @staticmethod
    def _preview(candidates: list[ImageCandidate]) -> str:
        """Our smallest stored copy of the picture shown now (other candidates are not downloaded yet)."""
        chosen = next((candidate for candidate in candidates if candidate.is_chosen and candidate.variants), None)
        if chosen is None:
            return ""
        smallest = StoredImage.from_json(chosen.variants).webp[0]
        return default_storage.url(smallest.name)
