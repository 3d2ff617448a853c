"""What the filtered story list shows a signed-in reader to follow.

The stories app renders the list and never imports this app, and the list view offers no hook for
other apps' context, so the partial it includes asks here: one query, and only on signed-in readers'
(never cached) pages.
"""

from django import template

from .. import selectors

register = template.Library()


@register.simple_tag(takes_context=True)
def filter_follow_targets(context, filters, active_filters) -> list:
    """The list's active filters the reader can follow, with whether they do."""
    labels = {chip["kind"]: chip["label"] for chip in active_filters}
    return selectors.filter_targets(reader=context["request"].user, filters=filters, labels=labels)
