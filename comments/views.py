"""The comment thread, as an HTML fragment loaded after the story page and as a page of its own."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from stories.models import Story

from .models import Comment


def _thread_context(story: Story) -> dict:
    comments = Comment.objects.visible().filter(story=story).select_related("author")
    return {"story": story, "comments": comments}


@require_GET
def thread_fragment(request: HttpRequest, slug: str) -> HttpResponse:
    story = get_object_or_404(Story.objects.published(), slug=slug)
    return render(request, "comments/_thread.html", _thread_context(story))


@require_GET
def thread_page(request: HttpRequest, slug: str) -> HttpResponse:
    story = get_object_or_404(Story.objects.published().select_related("source"), slug=slug)
    return render(request, "comments/thread_page.html", _thread_context(story))
