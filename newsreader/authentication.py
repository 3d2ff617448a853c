"""The signed-in reader of a request, from the cache: every page a reader reads needs their account, and the
cache answers faster than a query.

`AuthenticationMiddleware` is Django's, with `request.user` looked up in the cache first. A cached account
is used only when Django itself would accept it: the session names it and a backend we use, the account
is active, and the session's hash matches the account's password as it is now. Anything else (no entry,
a changed password, a session signed with an older secret) goes to Django's own `get_user`, which decides
and, when it finds the reader, refills the cache. Every change saved to an account (its password, its
name, its staff status) drops its entry, and an entry lives USER_CACHE_SECONDS at most, which bounds what
a change made behind the ORM's back (an `update()` in SQL) may take to show. Groups and permissions are
not part of the entry: Django looks them up when a request first asks.
"""

from functools import partial

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.contrib.auth.middleware import auser
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare
from django.utils.functional import SimpleLazyObject

USER_CACHE_SECONDS = 60
_KEY_PREFIX = "newsreader:users:"


def user_cache_key(user_id) -> str:
    return f"{_KEY_PREFIX}{user_id}"


def get_user(request: HttpRequest):
    """The request's user, as `django.contrib.auth.get_user` would answer, from the cache when it can."""
    if not hasattr(request, "_cached_user"):
        request._cached_user = _cached(request) or _from_database(request)
    return request._cached_user


def _cached(request: HttpRequest):
    session = request.session
    user_id = session.get(SESSION_KEY)
    session_hash = session.get(HASH_SESSION_KEY)
    if user_id is None or not session_hash or session.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = cache.get(user_cache_key(user_id))
    if (
        user is None
        or str(user.pk) != str(user_id)
        or not user.is_active
        or not constant_time_compare(session_hash, user.get_session_auth_hash())
    ):
        return None
    return user


def _from_database(request: HttpRequest):
    user = auth.get_user(request)
    if user.is_authenticated and user.is_active:
        cache.set(user_cache_key(user.pk), user, USER_CACHE_SECONDS)
    return user


class AuthenticationMiddleware(DjangoAuthenticationMiddleware):
    """Django's, with `request.user` from `get_user` above."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.user = SimpleLazyObject(lambda: get_user(request))
        request.auser = partial(auser, request)


def forget_user(user_id) -> None:
    cache.delete(user_cache_key(user_id))


@receiver([post_save, post_delete], sender=settings.AUTH_USER_MODEL, dispatch_uid="newsreader.forget_saved_user")
def forget_saved_user(sender, instance, **kwargs) -> None:
    forget_user(instance.pk)
