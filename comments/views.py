"""The comment pages and forms.

The thread's first page is rendered into the story page; sorting and "Load more" arrive as htmx
fragments, or as a plain page of the thread without JavaScript. Each action (reply, edit, delete,
report) is a page of its own that htmx loads into the thread instead; recommending and choosing editors'
picks are one-button forms that come back to the page, or with htmx replace the comment's card. Views
read the request, call a service or a selector, and choose the response.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from newsreader.clientaddr import client_address
from newsreader.errors import refusal_response
from newsreader.personal import KeptHere
from stories import pagecache
from stories.models import Story

from . import moderation, notifications, rendering, selectors, services
from .errors import CommentError, InvalidComment, NotAllowed
from .forms import CommentForm, DeleteAccountForm, EditForm, NotificationsForm, ReportForm
from .models import Comment, Commenter

PUBLISHED_MESSAGE = "Your comment is published."


@dataclass(frozen=True)
class _Action:
    """One of the forms a reader can open on a comment: its page title and its partial template."""

    title: str
    partial: str


_ACTIONS = {
    "comment": _Action("Post a comment", "comments/_comment_form.html"),
    "reply": _Action("Reply", "comments/_comment_form.html"),
    "edit": _Action("Edit your comment", "comments/_edit_form.html"),
    "delete": _Action("Delete your comment", "comments/_delete_form.html"),
    "report": _Action("Report a comment", "comments/_report_form.html"),
    "recommend": _Action("Recommend a comment", "comments/_toggle_refused.html"),
    "pick": _Action("Editors' picks", "comments/_toggle_refused.html"),
}


# --- Reading ---------------------------------------------------------------------------------


@pagecache.visitor_page(story_slug="slug")
@require_safe
def thread_fragment(request: HttpRequest, slug: str) -> HttpResponse:
    """The thread as an HTML fragment; with `part=more`, only the next page of top-level comments. What a
    visitor gets is kept in the process per version of the discussion, as the story page's first page is."""
    story = _published_story(slug, fields=selectors.POSTING_STORY_FIELDS)
    part = "comments/_comment_rows.html" if request.GET.get("part") == "more" else "comments/_thread.html"
    sort, start = selectors.parse_sort(request.GET.get("sort")), selectors.parse_start(request.GET.get("start"))

    def rendered() -> dict:
        context = _thread_context(request, story, sort=sort, start=start)
        return {"html": render_to_string(part, context, request), "comments_close_at": context["comments_close_at"]}

    generations = (
        None if request.user.is_authenticated else pagecache.current_generations(pagecache.story_scopes(story.slug))
    )
    made = _kept_for_visitors(request, story, (part, sort, start), generations, rendered)
    response = pagecache.changes_at(HttpResponse(made["html"]), made["comments_close_at"])
    return pagecache.about_story(response, story)


@pagecache.visitor_page(story_slug="slug")
@require_safe
def thread_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The same thread as a page of its own: where sorting and "Load more" lead without JavaScript."""
    story = _published_story(slug)
    context = _thread_context(request, story)
    response = pagecache.changes_at(render(request, "comments/thread_page.html", context), context["comments_close_at"])
    return pagecache.about_story(response, story)


@pagecache.visitor_page
@require_safe
def comment_page(request: HttpRequest, pk: int) -> HttpResponse:
    """A comment's permalink: the comment and the replies under it. Also where deep threads continue."""
    comment = _comment_or_404(pk)
    viewer = selectors.viewer_for(request, comment.story, moderation.active_rules())
    rows = selectors.comment_thread(comment=comment, viewer=viewer)
    if not rows:
        raise Http404("This comment is not available.")
    context = {"story": comment.story, "comment": comment, "rows_html": rendering.rows(rows), "viewer": viewer}
    return pagecache.about_story(render(request, "comments/comment_page.html", context), comment.story)


@pagecache.visitor_page(story_slug="slug")
@require_safe
def live(request: HttpRequest, slug: str) -> JsonResponse:
    """What an open thread polls for "N new comments — show" (static/js/comments.js): the story's published
    comment count and its newest published comment's id.

    The script asks without cookies, so the page cache answers from one Redis round trip before sessions,
    authentication and this view, until a comment changes the story's generation. It is the same for every
    reader: shared caches may keep it for half the polling interval too."""
    story = selectors.live_thread(slug)
    if story is None:
        raise Http404("No such story.")
    response = JsonResponse({"count": story.comment_count, "newest": story.newest_comment_id})
    response["Cache-Control"] = f"public, max-age={settings.COMMENTS_LIVE_POLL_SECONDS // 2}"
    return pagecache.about_story(response, story)


def story_page_comments(
    sender,
    *,
    request: HttpRequest,
    story: Story,
    generations: dict[str, int] | None = None,
    story_is_current: bool = True,
    **kwargs,
) -> dict:
    """The first page of the thread, rendered into the story page itself so that it reads without
    JavaScript (connected to `stories.extensions.story_page_context`), with the form and each reader's
    actions as personal parts (comments/parts.py).

    The story page is kept in the page cache with these comments in it for every reader: every change to
    a published comment invalidates it, and nothing here differs between readers. Made for a visitor, it
    is also kept in the process with the `generations` of the site, the story and its discussion, read
    before the page was made, for as long as they stay the same (`_kept_for_visitors`).
    `story_is_current`: its comment count was read with this request, not kept.
    """
    return _kept_for_visitors(
        request, story, ("story_page",), generations, lambda: _first_page_context(request, story, story_is_current)
    )


def _kept_for_visitors(
    request: HttpRequest, story: Story, what: tuple, generations: dict[str, int] | None, make: Callable[[], dict]
) -> dict:
    """`make()`'s rendering of a part of the story's thread (`what` names it, with its sort and start),
    kept in the process for visitors while the `generations` of what it shows, read before it was
    made, stay the same (KEPT_THREAD_SECONDS at most, and never past the thread's closing)."""
    scopes = pagecache.story_scopes(story.slug)
    if request.user.is_authenticated or generations is None or not set(scopes) <= generations.keys():
        return make()
    key = (story.pk, *what, *(generations[scope] for scope in scopes))
    kept = _kept_threads.get_many([key]).get(key)
    if kept is None:
        kept = make()
        closes = kept["comments_close_at"]
        if closes is None or closes > timezone.now() + timedelta(seconds=KEPT_THREAD_SECONDS):
            _kept_threads.set_many({key: kept})
    return kept


KEPT_THREAD_SECONDS = 60
# Thread pages kept in this process, the least recently read forgotten first: 5 to 150 KB each (a page
# of 20 threads whole), a few MB in all.
KEPT_THREADS_IN_PROCESS = 200
_kept_threads = KeptHere(KEPT_THREADS_IN_PROCESS, KEPT_THREAD_SECONDS)


def _first_page_context(request: HttpRequest, story: Story, story_is_current: bool) -> dict:
    """The comments' section of the story page (`story_page_comments`, rendered) with the thread's first
    page and the story's comment count as it is now."""
    counts = None if story_is_current else Story.objects.counts_of(story.pk)
    if counts is not None and counts["comment_count"] != story.comment_count:
        story = copy.copy(story)
        story.comment_count = counts["comment_count"]
    context = _thread_context(request, story, sort=selectors.Sort.OLDEST, start=0)
    return {
        "story_page_comments": render_to_string("comments/_section.html", context, request),
        "comments_close_at": context["comments_close_at"],
    }


def forget_kept_threads() -> None:
    """Empty what this process keeps (for tests, which start each with empty caches)."""
    _kept_threads.clear()


# --- Writing ---------------------------------------------------------------------------------


@login_required
@require_POST
def post_comment(request: HttpRequest, slug: str) -> HttpResponse:
    return _post(request, story=_story_to_post_on(slug), parent=None)


@login_required
@require_http_methods(["GET", "POST"])
def reply(request: HttpRequest, pk: int) -> HttpResponse:
    if request.method == "POST":
        parent = _comment_to_reply_to(pk)
        return _post(request, story=parent.story, parent=parent)
    return _action_response(request, "reply", comment=_comment_or_404(pk), form=CommentForm())


@login_required
@require_http_methods(["GET", "POST"])
def edit(request: HttpRequest, pk: int) -> HttpResponse:
    comment = _comment_or_404(pk)
    if request.method == "GET":
        if not comment.can_be_edited_by(request.user.pk):
            error = NotAllowed("Only its author can edit a comment, and only for a while after posting it.")
            return _action_response(request, "edit", comment=comment, form=None, error=error)
        return _action_response(request, "edit", comment=comment, form=EditForm(initial={"body": comment.body_source}))

    form = EditForm(request.POST)
    try:
        if not form.is_valid():
            raise InvalidComment(form.errors["body"][0])
        comment = services.comment_edit(comment=comment, editor=request.user, body=form.cleaned_data["body"])
    except CommentError as error:
        return _action_response(request, "edit", comment=comment, form=form, error=error)
    message = moderation.HELD_MESSAGE if comment.status == Comment.Status.PENDING else "Your comment is updated."
    if not request.htmx:
        messages.success(request, message)
        return redirect(comment.get_absolute_url())
    card = rendering.card(selectors.single_row(comment, _author_viewer(request)))
    return render(request, "comments/_changed.html", {"card_html": card, "comment": comment, "message": message})


@login_required
@require_http_methods(["GET", "POST"])
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    comment = _comment_or_404(pk)
    if request.method == "GET":
        error = None if comment.author_id == request.user.pk else NotAllowed("You can only delete your own comments.")
        return _action_response(request, "delete", comment=comment, form=None, error=error)
    try:
        comment = services.comment_delete(comment=comment, user=request.user)
    except CommentError as error:
        return _action_response(request, "delete", comment=comment, form=None, error=error)
    message = "Your comment is deleted."
    if not request.htmx:
        messages.success(request, message)
        return redirect("comments:thread_page", slug=comment.story.slug)
    context = {
        "card_html": rendering.card(selectors.single_row(comment, _author_viewer(request))),
        "comment": comment,
        "message": message,
        "comment_count": _comment_count(comment.story),
    }
    return render(request, "comments/_changed.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def report(request: HttpRequest, pk: int) -> HttpResponse:
    comment = _comment_or_404(pk)
    if request.method == "GET":
        return _action_response(request, "report", comment=comment, form=ReportForm())
    form = ReportForm(request.POST)
    try:
        if not form.is_valid():
            raise InvalidComment(next(iter(form.errors.values()))[0])
        services.comment_report(
            comment=comment,
            reporter=request.user,
            reason=form.cleaned_data["reason"],
            detail=form.cleaned_data["detail"],
        )
    except CommentError as error:
        return _action_response(request, "report", comment=comment, form=form, error=error)
    message = "Thank you for the report. A moderator will look at this comment."
    if not request.htmx:
        messages.success(request, message)
        return redirect("comments:thread_page", slug=comment.story.slug)
    # The form's slot empties and the thread's notice line says so.
    return render(request, "comments/_notice.html", {"message": message})


@login_required
@require_POST
def recommend(request: HttpRequest, pk: int) -> HttpResponse:
    """Recommend the comment (`recommend=1`) or take the recommendation back (`recommend=0`)."""
    comment = _comment_or_404(pk)
    wanted = request.POST.get("recommend") != "0"
    try:
        if wanted:
            comment = services.comment_recommend(comment=comment, reader=request.user)
        else:
            comment = services.comment_unrecommend(comment=comment, reader=request.user)
    except CommentError as error:
        return _action_response(request, "recommend", comment=comment, form=None, error=error)
    message = "You recommend this comment." if wanted else "You no longer recommend this comment."
    return _toggled(request, comment, message)


@login_required
@require_POST
def pick(request: HttpRequest, pk: int) -> HttpResponse:
    """A moderator makes the comment an editors' pick (`picked=1`) or stops it being one (`picked=0`)."""
    comment = _comment_or_404(pk)
    picked = request.POST.get("picked") != "0"
    try:
        comment = services.comment_pick(comment=comment, moderator=request.user, picked=picked)
    except CommentError as error:
        return _action_response(request, "pick", comment=comment, form=None, error=error)
    message = "The comment is an editors' pick." if picked else "The comment is no longer an editors' pick."
    return _toggled(request, comment, message)


def _toggled(request: HttpRequest, comment: Comment, message: str) -> HttpResponse:
    """Back to the page the button was on without JavaScript; with htmx, the card as this reader now sees it."""
    if not request.htmx:
        messages.success(request, message)
        return redirect(_back(request, comment))
    viewer = selectors.viewer_for(request, comment.story, moderation.active_rules())
    card = rendering.card(selectors.single_row(comment, viewer))
    return render(request, "comments/_toggled.html", {"card_html": card, "message": message})


def _back(request: HttpRequest, comment: Comment) -> str:
    """The page the reader came from (this site's only), at the comment; its own page when unknown."""
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer.split("#", 1)[0] + f"#comment-{comment.pk}"
    return comment.get_absolute_url()


def _post(request: HttpRequest, *, story: Story, parent: Comment | None) -> HttpResponse:
    form = CommentForm(request.POST)
    action = "reply" if parent else "comment"
    try:
        if not form.is_valid():
            raise InvalidComment(next(iter(form.errors.values()))[0])
        comment = services.comment_create(
            story=story,
            author=request.user,
            body=form.cleaned_data["body"],
            parent=parent,
            idempotency_key=form.cleaned_data["idempotency_key"],
            ip_address=client_address(request),
        )
    except CommentError as error:
        # The form and the page around it show more of the parent than posting read.
        parent = _comment_or_404(parent.pk) if parent is not None else None
        return _action_response(request, action, story=story, comment=parent, form=form.fresh(), error=error)
    message = moderation.HELD_MESSAGE if comment.status == Comment.Status.PENDING else PUBLISHED_MESSAGE
    if not request.htmx:
        messages.success(request, message)
        return redirect(comment.get_absolute_url())
    comment.author = request.user
    context = {
        "rows_html": rendering.rows([selectors.single_row(comment, _author_viewer(request))]),
        "story": story,
        "parent": parent,
        "form": CommentForm() if parent is None else None,
        "message": message,
        "comment_count": story.comment_count,
    }
    return render(request, "comments/_posted.html", context)


def _action_response(
    request: HttpRequest,
    action: str,
    *,
    story: Story | None = None,
    comment: Comment | None,
    form,
    error: CommentError | None = None,
) -> HttpResponse:
    """A form for `action`: a partial for htmx (retargeted at the form's place on a refusal), or a page."""
    story = story or comment.story
    container = f"comment-{comment.pk}-slot" if comment is not None else "comment-form-top"
    context = {
        "action": action,
        "title": _ACTIONS[action].title,
        "partial": _ACTIONS[action].partial,
        "story": story,
        "comment": comment,
        "form": form,
        "error": error.message if error else "",
        "container": container,
    }
    if request.htmx:
        response = refusal_response(request, _ACTIONS[action].partial, context, error=error)
        if error:
            response["HX-Retarget"] = f"#{container}"
            response["HX-Reswap"] = "innerHTML"
            # The refusal in the form is now the one notice: the thread's notice line lets go of the last one.
            response.write(render_to_string("comments/_notice.html", {"message": ""}, request))
        return response
    if comment is not None:
        context["card_html"] = rendering.card(selectors.single_row(comment, selectors.Viewer()))
    return refusal_response(request, "comments/action_page.html", context, error=error)


# --- The reader's own page -------------------------------------------------------------------


@login_required
@require_GET
def activity(request: HttpRequest) -> HttpResponse:
    """The reader's comments (with what became of each) and the replies they got."""
    page = Paginator(selectors.comments_by(request.user), 20).get_page(request.GET.get("page"))
    services.commenter_mark_replies_seen(user=request.user)
    commenter = Commenter.objects.filter(user=request.user).first()
    context = {
        "page": page,
        "replies": selectors.replies_to(request.user)[:20],
        "notifications_form": NotificationsForm(
            initial={"notify_replies": commenter.notify_replies if commenter else True}
        ),
    }
    return render(request, "comments/activity.html", context)


@login_required
@require_POST
def notification_settings(request: HttpRequest) -> HttpResponse:
    form = NotificationsForm(request.POST)
    enabled = form.is_valid() and form.cleaned_data["notify_replies"]
    services.commenter_set_reply_notifications(user=request.user, enabled=enabled)
    messages.success(request, "You will get an email when someone replies." if enabled else "No more reply emails.")
    return redirect("comments:activity")


@login_required
@require_GET
def export(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(selectors.export_for(request.user), json_dumps_params={"indent": 2, "ensure_ascii": False})
    filename = f"comments-{request.user.username}-{timezone.now():%Y-%m-%d}.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def delete_account(request: HttpRequest) -> HttpResponse:
    form = DeleteAccountForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        user = request.user
        logout(request)
        erased = services.account_delete(user=user)
        messages.success(request, f"Your account is deleted. {erased} comments now show as [deleted].")
        return redirect("stories:list")
    status = 422 if form.is_bound else 200
    return render(request, "comments/delete_account.html", {"form": form}, status=status)


@csrf_exempt  # The signed token is the credential; mail clients post here without a form (RFC 8058).
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    user = notifications.user_for_unsubscribe_token(token)
    if user is None:
        return render(request, "comments/unsubscribe.html", {"invalid": True}, status=404)
    if request.method == "POST":
        services.commenter_set_reply_notifications(user=user, enabled=False)
        return render(request, "comments/unsubscribe.html", {"done": True})
    return render(request, "comments/unsubscribe.html", {"token": token})


# --- Helpers ---------------------------------------------------------------------------------


def _published_story(slug: str, *, fields: tuple[str, ...] | None = None) -> Story:
    stories = Story.objects.published()
    story = (stories.only(*fields) if fields else stories).filter(slug=slug).first()
    if story is None:
        raise Http404("No such story.")
    return story


def _story_to_post_on(slug: str) -> Story:
    story = selectors.story_for_posting(slug)
    if story is None or not story.is_visible:
        raise Http404("No such story.")
    return story


def _comment_to_reply_to(pk: int) -> Comment:
    """The parent of a reply with its story, as much of them as posting reads."""
    comment = selectors.comment_for_replying(pk)
    if comment is None or not comment.story.is_visible:
        raise Http404("No such comment.")
    return comment


def _comment_or_404(pk: int) -> Comment:
    comment = Comment.objects.select_related("story", "author").filter(pk=pk).first()
    if comment is None or not comment.story.is_visible:
        raise Http404("No such comment.")
    return comment


def _thread_context(request: HttpRequest, story: Story, *, sort: str | None = None, start: int | None = None) -> dict:
    rules = moderation.active_rules()
    viewer = selectors.viewer_for(request, story, rules)
    page = selectors.thread_page(
        story=story,
        viewer=viewer,
        sort=sort or selectors.parse_sort(request.GET.get("sort")),
        start=selectors.parse_start(request.GET.get("start")) if start is None else start,
    )
    return {
        "story": story,
        "page": page,
        "rows_html": rendering.rows(page.rows),
        "viewer": viewer,
        "fragment_url": reverse("comments:thread", kwargs={"slug": story.slug}),
        "page_url": reverse("comments:thread_page", kwargs={"slug": story.slug}),
        "closed_notice": moderation.closed_notice(story, rules, now=viewer.now),
        # A page showing the form or "Log in to comment." is kept no longer than the thread stays open.
        "comments_close_at": moderation.comments_close_at(story, rules),
        "live_poll_seconds": settings.COMMENTS_LIVE_POLL_SECONDS,
    }


def _author_viewer(request: HttpRequest) -> selectors.Viewer:
    return selectors.Viewer(user_id=request.user.pk, can_post=True)


def _comment_count(story: Story) -> int:
    return Story.objects.filter(pk=story.pk).values_list("comment_count", flat=True).first() or 0
