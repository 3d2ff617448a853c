"""The story page's personal parts (newsreader/personal.py), and the story every part of a page can share."""

from django.db.models import Prefetch, prefetch_related_objects

from newsreader.personal import Fill, limited_ids, part, reader_fact

from . import reports
from .models import LabelReport, Section, Story, Tag

# What the parts show of a story and decide with (its comment policy): not its text, which they never show.
_PART_FIELDS = (
    "slug",
    "title",
    "published_at",
    "comments_mode",
    "status",
    "section__name",
    "section__slug",
    "region__name",
    "region__slug",
    "region__parent__name",
    "source__name",
    "source__slug",
)


def story_for_parts(fill: Fill, story_id: str | int, *, with_tags: bool = False) -> Story | None:
    """The published story a part is about, with its section, region and source (and its tags, `with_tags`):
    looked up once for every reader of this version of the page (the story's own changes make a new one)."""
    pk = int(story_id)
    story = fill.shared(
        ("story", pk),
        lambda: (
            Story.objects.published()
            .select_related("source", "section", "region__parent")
            .only(*_PART_FIELDS)
            .filter(pk=pk)
            .first()
        ),
    )
    if story is not None and with_tags:
        tags = Prefetch("tags", queryset=Tag.objects.order_by("name"))
        fill.shared(("story_tags", pk), lambda: prefetch_related_objects([story], tags))
    return story


@reader_fact("label_reported")
def stories_reported(user) -> frozenset[int] | None:
    """The stories whose labels the reader reported (None: too many to keep)."""
    reported = LabelReport.objects.filter(reporter=user).order_by().values_list("story_id", flat=True)
    return limited_ids(reported.distinct())


@part("label_report", kept="content")
def label_report(fill: Fill, occurrences: list[dict[str, str]]) -> list[str]:
    """ "Is a label wrong?" and its form, for a signed-in reader; nothing for a visitor."""
    request = fill.request
    if not request.user.is_authenticated:
        return ["" for _ in occurrences]
    forms = []
    for arguments in occurrences:
        story = story_for_parts(fill, arguments["story"], with_tags=True)
        if story is None:
            forms.append("")
            continue
        form = reports.report_form_context(
            story=story,
            reader=request.user,
            sections=fill.shared("sections", lambda: list(Section.objects.all())),
            reported=fill.facts("label_reported"),
        )
        context = {"story": story, "label_report": form}
        state = (story.pk, form["already_reported"])
        forms.append(fill.shared_render("stories/_label_report.html", context.copy, key=state))
    return forms
