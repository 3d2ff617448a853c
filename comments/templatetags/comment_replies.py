"""`{% unseen_reply_count as replies %}`: how many new replies a signed-in reader has, for the header's
"Your comments" link (one cached number, or one query; see `selectors.unseen_reply_count`)."""

from django import template

from .. import selectors

register = template.Library()


@register.simple_tag(takes_context=True)
def unseen_reply_count(context) -> int:
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return 0
    return selectors.unseen_reply_count(user.pk)
