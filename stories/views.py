"""The reader's pages: the story list and the story page, and a signed-in reader's report of a wrong label."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from . import articles, extensions, pagecache, rendering, reports, viewcounts
from .models import Story, section_menu_rows
from .selectors import (
    StoryFilters,
    active_filters,
    numbered_page_url,
    story_list_page,
)


@pagecache.visitor_page
@require_safe
def story_list(request: HttpRequest) -> HttpResponse:
    filters = StoryFilters.from_query(request.GET)
    chosen = active_filters(filters)
    if filters.page and not filters.q:
        return redirect(numbered_page_url(filters, chosen, per_page=settings.STORIES_PER_PAGE))
    page = story_list_page(filters, chosen, per_page=settings.STORIES_PER_PAGE)
    return render(
        request,
        "stories/story_list.html",
        {
            "page": page,
            "stories": page.stories,
            "cards": rendering.joined_cards(page.stories, query=filters.querystring()),
            "filters": filters,
            "active_filters": chosen,
            "section_menu": rendering.section_menu(section_menu_rows(), current=filters.section),
        },
    )


@pagecache.visitor_page(story_slug="slug")
@require_safe
def story_detail(request: HttpRequest, slug: str) -> HttpResponse:
    reader = viewcounts.reader_key(request)
    found = articles.story_article(request, slug, reader=reader)
    if found.article is None:
        raise Http404("No such story.")
    story = found.article.story
    if not found.view_counted:
        viewcounts.record_view(story_id=story.pk, reader=reader)
    filters = StoryFilters.from_query(request.GET)
    context = {"story": story, "article": found.article.for_page(back_query=filters.querystring(include_page=True))}
    parts = extensions.story_page_context.send(
        sender=Story, request=request, story=story, generations=found.generations, story_is_current=found.made_now
    )
    for _receiver, part in parts:
        context.update(part)
    response = render(request, "stories/story_detail.html", context)
    pagecache.changes_at(response, context.get("comments_close_at"))
    return pagecache.shows_story(response, story, beside=(story.duplicate_of, *story.published_coverage))


@login_required
@require_POST
def report_label(request: HttpRequest, slug: str) -> HttpResponse:
    """A signed-in reader says the story's section or one of its tags is wrong."""
    story = get_object_or_404(Story.objects.published().for_cards(), slug=slug)
    form = reports.LabelReportForm(request.POST, story=story)
    try:
        if not form.is_valid():
            reports.count_attempt(request.user)
            raise reports.InvalidReport(form.first_error())
        reports.report_label(story=story, reader=request.user, **form.cleaned_data)
    except reports.LabelReportError as error:
        context = {
            "story": story,
            "error": error.message,
            "label_report": reports.report_form_context(story=story, reader=request.user),
        }
        response = render(request, "stories/label_report_page.html", context, status=error.status)
        if error.retry_after:
            response["Retry-After"] = str(error.retry_after)
        return response
    messages.success(request, "Thank you for the report. A moderator will look at this story's labels.")
    return redirect(f"{story.get_absolute_url()}#label-report")


@require_safe
def robots_txt(request: HttpRequest) -> HttpResponse:
    return render(request, "robots.txt", content_type="text/plain")
