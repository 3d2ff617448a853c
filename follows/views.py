"""The reader's follows, saved stories and digest settings. Every change is a POST form that works
without JavaScript and sends the reader back where they were."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from newsreader import errors
from stories.models import Story

from . import digests, selectors, services
from .forms import DigestSettingsForm, FollowForm


@login_required
@require_GET
def following(request: HttpRequest) -> HttpResponse:
    page = selectors.following_page(
        reader=request.user, cursor=request.GET.get("after", ""), per_page=settings.STORIES_PER_PAGE
    )
    return render(request, "follows/following.html", {"page": page, "stories": page.stories})


@login_required
@require_POST
def follow(request: HttpRequest) -> HttpResponse:
    return _change_follow(request, services.follow, "You follow {label} now.")


@login_required
@require_POST
def unfollow(request: HttpRequest) -> HttpResponse:
    return _change_follow(request, services.unfollow, "You no longer follow {label}.")


def _change_follow(request: HttpRequest, change, message: str) -> HttpResponse:
    form = FollowForm(request.POST)
    if not form.is_valid():
        return _refused(request, services.FollowError("Choose a section, tag, region or source to follow."))
    try:
        change(reader=request.user, **form.cleaned_data)
    except services.FollowError as error:
        return _refused(request, error)
    label = request.POST.get("label", "").strip()[:200] or form.cleaned_data["slug"]
    messages.success(request, message.format(label=label))
    return _back(request)


@login_required
@require_GET
def saved(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.saved_stories(request.user), settings.STORIES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "follows/saved.html", {"page": page})


@login_required
@require_POST
def save_story(request: HttpRequest, slug: str) -> HttpResponse:
    return _change_saved(request, slug, services.save_story, "Saved for later.")


@login_required
@require_POST
def unsave_story(request: HttpRequest, slug: str) -> HttpResponse:
    return _change_saved(request, slug, services.unsave_story, "Removed from your saved stories.")


def _change_saved(request: HttpRequest, slug: str, change, message: str) -> HttpResponse:
    story = Story.objects.published().filter(slug=slug).first()
    if story is None:
        raise Http404("No such story.")
    try:
        change(reader=request.user, story=story)
    except services.FollowError as error:
        return _refused(request, error)
    messages.success(request, message)
    return _back(request)


@login_required
@require_http_methods(["GET", "POST"])
def digest_settings(request: HttpRequest) -> HttpResponse:
    current = services.digest_settings_for(request.user)
    form = DigestSettingsForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        services.digest_settings_update(reader=request.user, **form.cleaned_data)
        messages.success(request, "Your digest settings are saved.")
        return redirect("follows:digest_settings")
    return render(request, "follows/digest_settings.html", {"form": form}, status=422 if form.errors else 200)


@csrf_exempt  # The signed token is the credential; mail clients post here without a form (RFC 8058).
@require_http_methods(["GET", "POST"])
def digest_unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    reader = digests.reader_for_unsubscribe_token(token)
    if reader is None:
        return render(request, "follows/unsubscribe.html", {"invalid": True}, status=404)
    if request.method == "POST":
        services.digest_unsubscribe(reader=reader)
        return render(request, "follows/unsubscribe.html", {"done": True})
    return render(request, "follows/unsubscribe.html", {"token": token})


def _next_url(request: HttpRequest) -> str:
    """The page the form was on, when it is one of ours; else the Following page."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("follows:following")


def _back(request: HttpRequest) -> HttpResponse:
    return redirect(_next_url(request))


def _refused(request: HttpRequest, error: services.FollowError) -> HttpResponse:
    context = {"error": error.message, "back": _next_url(request)}
    return errors.refusal_response(request, "follows/refused.html", context, error=error)
