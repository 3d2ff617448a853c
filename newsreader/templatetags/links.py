"""`{% path "stories:list" %}` and `{% asset "css/site.css" %}`: the URL of a view that takes no arguments
and of a static file, worked out once per process.

Django's `{% url %}` and `{% static %}` work them out on every use: on the site's layout, rendered with
every page, that was a third of its cost. Both answers change only with a deploy, which restarts the
process; the path also depends on the script prefix (the site served under a sub-path), part of the key.
"""

from functools import lru_cache

from django import template
from django.contrib.staticfiles.storage import staticfiles_storage
from django.urls import get_script_prefix, get_urlconf, reverse

register = template.Library()


@register.simple_tag
def path(name: str) -> str:
    return _path(name, get_script_prefix(), get_urlconf())


@lru_cache(maxsize=256)
def _path(name: str, _prefix: str, urlconf: str | None) -> str:
    return reverse(name, urlconf=urlconf)


@register.simple_tag
def asset(name: str) -> str:
    return _asset(name)


@lru_cache(maxsize=256)
def _asset(name: str) -> str:
    return staticfiles_storage.url(name)
