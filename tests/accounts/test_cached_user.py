"""The signed-in reader's account comes from the cache, and only when Django itself would accept it: every
change saved to the account (password, activity, groups) takes effect on the reader's next request."""

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.test import Client

from newsreader import authentication, personal
from tests.factories import StoryFactory, UserFactory

pytestmark = pytest.mark.django_db


def current_user(client: Client):
    """The account the client's session stands for, as the next request of theirs would get it."""
    request = client.get("/").wsgi_request
    return request.user


def test_a_readers_next_requests_take_their_account_from_the_cache(client, reader, django_assert_num_queries):
    client.force_login(reader)
    current_user(client)  # the first request looks it up

    with django_assert_num_queries(0):
        user = authentication.get_user(client.get("/").wsgi_request)

    assert user.pk == reader.pk and user.is_authenticated


def test_a_new_password_signs_out_the_readers_other_sessions(client, reader, django_capture_on_commit_callbacks):
    client.force_login(reader)
    assert current_user(client).is_authenticated

    with django_capture_on_commit_callbacks(execute=True):
        reader.set_password("a different horse entirely")
        reader.save()

    assert not current_user(client).is_authenticated


def test_a_password_changed_behind_the_orms_back_signs_the_reader_out_within_user_cache_seconds(
    client, reader, monkeypatch
):
    client.force_login(reader)
    assert current_user(client).is_authenticated
    get_user_model().objects.filter(pk=reader.pk).update(password="!unusable")

    # What USER_CACHE_SECONDS does at the latest: the shared entry expires, and so does the process's copy.
    authentication.forget_user(reader.pk)
    later = time.monotonic() + authentication.USER_CACHE_SECONDS + 1
    monkeypatch.setattr(personal.time, "monotonic", lambda: later)

    assert not current_user(client).is_authenticated


def test_a_deactivated_account_is_signed_out(client, reader, django_capture_on_commit_callbacks):
    client.force_login(reader)
    assert current_user(client).is_authenticated

    with django_capture_on_commit_callbacks(execute=True):
        reader.is_active = False
        reader.save()

    assert not current_user(client).is_authenticated


@pytest.mark.parametrize("side", ["user", "group"])
def test_joining_or_leaving_a_group_shows_in_the_readers_permissions_at_once(client, reader, side):
    group = Group.objects.create(name="Editors")
    group.permissions.add(Permission.objects.get(codename="change_comment"))
    client.force_login(reader)
    assert not current_user(client).has_perm("comments.change_comment")

    if side == "user":
        reader.groups.add(group)
    else:
        group.user_set.add(reader)
    assert current_user(client).has_perm("comments.change_comment")

    if side == "user":
        reader.groups.clear()
    else:
        group.user_set.clear()
    assert not current_user(client).has_perm("comments.change_comment")


def test_a_cached_account_never_passes_to_another_session(reader):
    other = UserFactory()
    ana, ben = Client(), Client()
    ana.force_login(reader)
    ben.force_login(other)
    for _ in range(2):
        assert current_user(ana).pk == reader.pk
        assert current_user(ben).pk == other.pk


@pytest.fixture
def story_read_twice(client, reader, settings):
    """A story page the signed-in reader has read twice, the page cache on: their account is kept."""
    settings.VISITOR_PAGE_CACHE_SECONDS = 60
    story = StoryFactory()
    client.force_login(reader)
    for _ in range(2):
        assert b"Log out" in client.get(story.get_absolute_url()).content
    return story


def test_on_a_shared_page_the_readers_account_comes_from_the_process(
    client, reader, story_read_twice, django_assert_num_queries
):
    story = story_read_twice
    cache.delete(authentication.user_cache_key(reader.pk))  # so not from the shared cache either

    with django_assert_num_queries(0):
        response = client.get(story.get_absolute_url())

    assert response.wsgi_request.user.pk == reader.pk
    assert authentication.user_cache_key(reader.pk) not in cache


def test_an_account_closed_elsewhere_is_refused_on_the_readers_next_page(
    client, reader, story_read_twice, django_capture_on_commit_callbacks
):
    story = story_read_twice
    with django_capture_on_commit_callbacks(execute=True):
        get_user_model().objects.get(pk=reader.pk).delete()

    response = client.get(story.get_absolute_url())
    assert not response.wsgi_request.user.is_authenticated
    assert b"Log out" not in response.content and b"Log in to comment." in response.content
