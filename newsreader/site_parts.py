"""The personal parts of every page (newsreader/personal.py): the header's account links and flash messages."""

from django.contrib.messages import get_messages
from django.template.loader import render_to_string

from .personal import Fill, part


@part("account_nav", kept="reader")
def account_nav(fill: Fill, occurrences: list[dict[str, str]]) -> list[str]:
    """ "Log in" and "Sign up" for a visitor; the reader's public name and links when signed in."""
    request = fill.request
    if request.user.is_authenticated:
        html = render_to_string("_account_nav.html", request=request)
    else:
        # A visitor's links need no context processor: rendered on every page made anew, so kept cheap.
        html = render_to_string("_account_nav.html", {"user": request.user, "request": request})
    return [html for _ in occurrences]


@part("messages")
def messages(fill: Fill, occurrences: list[dict[str, str]]) -> list[str]:
    """The reader's flash messages ("Your comment is published."), shown once."""
    shown = list(get_messages(fill.request))
    html = render_to_string("_messages.html", {"messages": shown}) if shown else ""
    return [html] + [""] * (len(occurrences) - 1)
