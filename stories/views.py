"""The reader's pages: the story list and the story page."""

from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from . import pagecache, viewcounts
from .models import Section, Story
from .selectors import StoryFilters, filter_labels, story_page_metadata


@require_GET
def story_list(request: HttpRequest) -> HttpResponse:
    cached = pagecache.lookup(request)
    if cached is not None:
        return pagecache.respond(cached)

    filters = StoryFilters.from_query(request.GET)
    stories = filters.apply(Story.objects.published().one_per_coverage_group()).for_cards()
    page = Paginator(stories, settings.STORIES_PER_PAGE).get_page(request.GET.get("page"))
    response = render(
        request,
        "stories/story_list.html",
        {
            "page": page,
            "stories": page.object_list,
            "filters": filters,
            "active_filters": filter_labels(filters),
            "sections": Section.objects.all(),
            "page_query": filters.querystring(),
        },
    )
    pagecache.store(request, response)
    return response


@require_GET
def story_detail(request: HttpRequest, slug: str) -> HttpResponse:
    cached = pagecache.lookup(request)
    if cached is not None:
        viewcounts.record_view(story_id=cached.story_id, reader=viewcounts.reader_key(request))
        return pagecache.respond(cached)

    story = Story.objects.published().for_cards().with_coverage().filter(slug=slug).first()
    if story is None:
        raise Http404("No such story.")
    viewcounts.record_view(story_id=story.pk, reader=viewcounts.reader_key(request))
    filters = StoryFilters.from_query(request.GET)
    response = render(
        request,
        "stories/story_detail.html",
        {
            "story": story,
            "back_query": filters.querystring(include_page=True),
            "meta": story_page_metadata(request, story),
        },
    )
    pagecache.store(request, response, story_id=story.pk)
    return response


@require_GET
def robots_txt(request: HttpRequest) -> HttpResponse:
    return render(request, "robots.txt", content_type="text/plain")
