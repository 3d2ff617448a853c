"""`{% personal "name" story=story.pk %}`: a part of a shared page that belongs to one reader.

See newsreader/personal.py."""

from django import template
from django.utils.safestring import SafeString

from newsreader import personal as parts

register = template.Library()


@register.simple_tag(takes_context=True)
def personal(context, name: str, **arguments) -> SafeString:
    return parts.render(context["request"], name, **arguments)
