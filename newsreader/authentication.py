"""The signed-in reader of a request, from the cache: every page a reader reads needs their account, and the
cache answers faster than a query.

A page read also learns the reader's generation (stories.pagecache reads it with the page, and every
change saved to their account bumps it): then the account this process kept for that generation answers,
with no round trip at all (`use_reader_generation`).

`AuthenticationMiddleware` is Django's, with `request.user` looked up in the cache first. A cached account
is used only when Django itself would accept it: the session names it and a backend we use, the account
is active, and the session's hash matches the account's password as it is now. Anything else (no entry,
a changed password, a session signed with an older secret) goes to Django's own `get_user`, which decides
and, when it finds the reader, refills the cache. Every change saved to an account (its password, its
name, its staff status) drops its entry, and an entry lives USER_CACHE_SECONDS at most, which bounds what
a change made behind the ORM's back (an `update()` in SQL) may take to show. Groups and permissions are
not part of the entry: Django looks them up when a request first asks.
"""

import copy
from functools import partial

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.contrib.auth.middleware import auser
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare
from django.utils.functional import SimpleLazyObject

from . import personal

USER_CACHE_SECONDS = 60
_KEY_PREFIX = "newsreader:users:"
# Accounts this process keeps by (id, reader generation), for USER_CACHE_SECONDS.
_kept_accounts = personal.KeptHere(10_000, USER_CACHE_SECONDS)


def user_cache_key(user_id) -> str:
    return f"{_KEY_PREFIX}{user_id}"


def get_user(request: HttpRequest):
    """The request's user, as `django.contrib.auth.get_user` would answer, from the cache when it can."""
    if not hasattr(request, "_cached_user"):
        kept_under = getattr(request, "_reader_generation", None)
        kept = _kept_accounts.get_many([kept_under]).get(kept_under) if kept_under else None
        # Copies: a request keeps things on its user (the permissions it looked up) that must not outlive it.
        user = _accepted(request, copy.copy(kept) if kept is not None else None)
        if user is None:
            user = _from_cache_or_database(request)
            if kept_under and user.is_authenticated and user.pk == kept_under[0]:
                _kept_accounts.set_many({kept_under: copy.copy(user)})
        request._cached_user = user
    return request._cached_user


def _from_cache_or_database(request: HttpRequest):
    if SESSION_KEY in request.session:
        user = _accepted(request, cache.get(user_cache_key(request.session[SESSION_KEY])))
        if user is not None:
            return user
    user = auth.get_user(request)
    if user.is_authenticated and user.is_active:
        cache.set(user_cache_key(user.pk), user, USER_CACHE_SECONDS)
    return user


def use_reader_generation(request: HttpRequest, user_id, generation: int) -> None:
    """Say the generation of the reader the request's session names, as read with the page: the account
    kept for it in this process may answer `request.user`. Call before anything asks for the user."""
    request._reader_generation = (int(user_id), generation)


def _accepted(request: HttpRequest, user):
    """`user` when the request's session is theirs and Django would accept it now; None otherwise."""
    session = request.session
    user_id = session.get(SESSION_KEY)
    session_hash = session.get(HASH_SESSION_KEY)
    if (
        user is None
        or user_id is None
        or not session_hash
        or session.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS
        or str(user.pk) != str(user_id)
        or not user.is_active
        or not constant_time_compare(session_hash, user.get_session_auth_hash())
    ):
        return None
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
def forget_saved_user(sender, instance, raw: bool = False, **kwargs) -> None:
    """A saved or deleted account leaves the cache now, and every process's kept copy once it is committed."""
    from stories import pagecache

    forget_user(instance.pk)
    if not raw:
        user_id = instance.pk
        transaction.on_commit(lambda: pagecache.reader_did_something(user_id))
