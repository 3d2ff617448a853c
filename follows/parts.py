"""Follow and save buttons, on the story page and the list's filter bar (personal parts: newsreader/personal.py)."""

from django.template.loader import render_to_string
from django.urls import reverse

from newsreader.personal import Fill, part, reader_fact
from stories.parts import story_for_parts
from stories.selectors import StoryFilters, filter_labels

from . import selectors

reader_fact("followed")(selectors.followed_targets)
reader_fact("saved")(selectors.saved_story_ids)


@part("story_follow", kept="content")
def story_follow(fill: Fill, occurrences: list[dict[str, str]]) -> list[str]:
    """The story's topics to follow and "Save for later" for a signed-in reader; a prompt to log in for a visitor."""
    request = fill.request
    panels = []
    for arguments in occurrences:
        slug = arguments["slug"]
        context = {"story_url": reverse("stories:detail", kwargs={"slug": slug}), "slug": slug}
        if not request.user.is_authenticated:
            panels.append(render_to_string("follows/_story_actions.html", context, request))
            continue
        story = story_for_parts(fill, arguments["story"], with_tags=True)
        if story is None:
            panels.append("")
            continue
        targets, saved = selectors.story_targets(
            reader=request.user, story=story, followed=fill.facts("followed"), saved=fill.facts("saved")
        )
        context["follow_panel"] = {"targets": targets, "saved": saved}
        state = (story.pk, slug, saved, *(target.followed for target in targets))
        panels.append(fill.shared_render("follows/_story_actions.html", context.copy, key=state))
    return panels


@part("filter_follow", kept="content")
def filter_follow(fill: Fill, occurrences: list[dict[str, str]]) -> list[str]:
    """Follow buttons for the list's active filters (from the page's own URL), or a prompt to log in."""
    request = fill.request
    filters = StoryFilters.from_query(request.GET)
    if not any((filters.section, filters.tag, filters.region, filters.source)):
        return ["" for _ in occurrences]
    context = {"filters": filters, "next": request.get_full_path(), "signed_in": request.user.is_authenticated}
    if not request.user.is_authenticated:
        html = render_to_string("follows/_filter_follow.html", context)
        return [html for _ in occurrences]
    labels = fill.shared(("filter_labels", context["next"]), lambda: _labels(filters))
    targets = selectors.filter_targets(
        reader=request.user, filters=filters, labels=labels, followed=fill.facts("followed")
    )
    context["follow_targets"] = targets
    state = (context["next"], *(target.followed for target in targets))
    html = fill.shared_render("follows/_filter_follow.html", context.copy, key=state)
    return [html for _ in occurrences]


def _labels(filters: StoryFilters) -> dict[str, str]:
    return {chip["kind"]: chip["label"] for chip in filter_labels(filters)}
