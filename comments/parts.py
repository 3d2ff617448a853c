"""The comment section's personal parts (newsreader/personal.py): what differs between readers of one thread.

The thread itself (who wrote what, the counts, the sort links) is the same for everyone and is kept in
the shared page. These parts fill in, per reader: "Log in to comment." or nothing, the comment form
or the notice saying why they may not post, their link to their own comments, and their comments
still awaiting moderation, which nobody else sees.
"""

import functools
from collections import defaultdict
from urllib.parse import quote

from django.urls import reverse
from django.utils.html import format_html

from newsreader.personal import FRESH_UUID, Fill, part, reader_fact
from stories.parts import story_for_parts

from . import moderation, rendering, selectors
from .forms import CommentForm
from .models import Comment

reader_fact("standing")(lambda user: selectors.reader_standing(user.pk))
reader_fact("commented_on")(selectors.stories_commented_on)
reader_fact("pending_on")(lambda user: selectors.stories_commented_on(user, status=Comment.Status.PENDING))
reader_fact("recommended_on")(selectors.stories_recommended_on)


def viewer_for_parts(fill: Fill, story_id: str | int) -> selectors.Viewer | None:
    """This request's reader as a commenter on the story, made once per request (None: no such story)."""
    story = story_for_parts(fill, story_id)
    if story is None:
        return None
    # A change to the rules changes every page's version (comments.signals), so the rules are kept with it.
    rules = fill.shared("moderation_rules", moderation.active_rules)
    return fill.once(
        ("viewer", story.pk),
        lambda: selectors.viewer_for(
            fill.request, story, rules, standing=fill.facts("standing"), csrf_token=fill.csrf_token()
        ),
    )


def _certainly_not(fill: Fill, fact: str, story_id: int) -> bool:
    """Whether the reader's fact says for certain that the story is not among theirs (None says nothing)."""
    stories = fill.facts(fact)
    return stories is not None and story_id not in stories


@part("comment_login", kept="content")
def comment_login(fill: Fill, occurrences: list[dict[str, str]]) -> list[str]:
    """ "Log in to comment." for a visitor, leading back to the comments."""
    if fill.request.user.is_authenticated:
        return ["" for _ in occurrences]
    prompts = []
    for arguments in occurrences:
        next_url = quote(reverse("stories:detail", kwargs={"slug": arguments["slug"]}) + "#comments", safe="/")
        login = reverse("account_login")
        prompts.append(
            format_html('<p class="comment-login"><a href="{}?next={}">Log in to comment.</a></p>', login, next_url)
        )
    return prompts


@part("comment_mine", kept="reader")
def comment_mine(fill: Fill, occurrences: list[dict[str, str]]) -> list[str]:
    """A signed-in reader's link to their own comments, beside the sort links."""
    if not fill.request.user.is_authenticated:
        return ["" for _ in occurrences]
    link = format_html('<p class="comment-mine"><a href="{}">Your comments</a></p>', reverse("comments:activity"))
    return [link for _ in occurrences]


@part("comment_form", kept="content")
def comment_form(fill: Fill, occurrences: list[dict[str, str]]) -> list[str]:
    """The form for a reader who may post, or the notice saying why they may not; nothing for a visitor."""
    if not fill.request.user.is_authenticated:
        return ["" for _ in occurrences]
    forms = []
    for arguments in occurrences:
        viewer = viewer_for_parts(fill, arguments["story"])
        if viewer is None:
            forms.append("")
            continue
        story = story_for_parts(fill, arguments["story"])
        state = (story.pk, viewer.can_post, viewer.notice)
        forms.append(
            fill.shared_render("comments/_top_form.html", functools.partial(_form_context, story, viewer), key=state)
        )
    return forms


def _form_context(story, viewer: selectors.Viewer) -> dict:
    return {
        "story": story,
        "notice": viewer.notice,
        # Each copy of the form gets a key of its own when it is sent out.
        "form": CommentForm(initial={"idempotency_key": FRESH_UUID}) if viewer.can_post else None,
    }


@part("pending_comments", kept=True)
def pending_comments(fill: Fill, occurrences: list[dict[str, str]]) -> list[str]:
    """The reader's own comments on the story that await moderation: shown to them alone, above the thread."""
    if not fill.request.user.is_authenticated:
        return ["" for _ in occurrences]
    sections = []
    for arguments in occurrences:
        story_id = int(arguments["story"])
        if _certainly_not(fill, "pending_on", story_id):
            sections.append("")
            continue
        viewer = viewer_for_parts(fill, story_id)
        pending = selectors.pending_rows(story_id=story_id, viewer=viewer) if viewer else []
        if not pending:
            sections.append("")
            continue
        sections.append(
            format_html(
                '<section class="comment-pending" aria-label="Your comments awaiting moderation">'
                '<ol class="comment-list">{}</ol></section>',
                rendering.rows(pending),
            )
        )
    return sections


@part("comment_actions", kept=True)
def comment_actions(fill: Fill, occurrences: list[dict[str, str]]) -> list[str]:
    """Reply, edit, delete, report, recommend and pick, as this reader may, under each comment on the page:
    all of a page's comments at once."""
    if not fill.request.user.is_authenticated:
        return ["" for _ in occurrences]
    by_story: dict[str, list[int]] = defaultdict(list)
    for arguments in occurrences:
        by_story[arguments["story"]].append(int(arguments["comment"]))
    shown: dict[int, str] = {}
    for story_id, comment_ids in by_story.items():
        viewer = viewer_for_parts(fill, story_id)
        if viewer is None:
            continue
        pk = int(story_id)
        if (
            not viewer.can_moderate
            and _certainly_not(fill, "commented_on", pk)
            and _certainly_not(fill, "recommended_on", pk)
        ):
            # None of the comments is theirs or recommended by them: the page says all the rest.
            rows = selectors.others_action_rows(story_id=pk, comment_ids=comment_ids, viewer=viewer)
        else:
            rows = selectors.action_rows(comment_ids=comment_ids, viewer=viewer)
        for row in rows:
            if row.has_actions:
                shown[row.comment.pk] = rendering.actions(row)
    return [shown.get(int(arguments["comment"]), "") for arguments in occurrences]
