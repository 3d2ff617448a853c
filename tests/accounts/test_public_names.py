"""A reader's public name: one word for it everywhere, no look-alike of another reader's, nothing invisible in it;
and one wording for logging in."""

import importlib
import re

import pytest
from django.apps import apps

from comments.models import Commenter
from newsreader.accounts import name_looks_taken
from tests.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CYRILLIC_O = "\u043e"
HOSTILE_INVISIBLES = "\u202e\u2066\u200b\u200d\ufeff\u2060"


def sign_up(client, name: str, email: str = "new@example.com"):
    return client.post(
        "/accounts/signup/", {"email": email, "username": name, "password1": PASSWORD, "password2": PASSWORD}
    )


def form_errors(response) -> list[str]:
    return response.context["form"].errors.get("username", [])


def test_sign_up_form_asks_for_a_public_name(client):
    html = client.get("/accounts/signup/").content.decode()

    assert '<label for="id_username">Public name:</label>' in html
    assert 'placeholder="Public name"' in html
    assert "Shown with your comments" in html
    assert "Username" not in html


def test_a_taken_name_is_refused_in_the_same_words(client):
    UserFactory(username="poster01")

    response = sign_up(client, "Poster01")

    assert form_errors(response) == ["Another reader already has this public name. Please choose another one."]


def test_a_name_with_forbidden_characters_is_explained_as_a_public_name(client):
    response = sign_up(client, "two words")

    assert form_errors(response) == ["A public name may contain only letters, digits and the characters @ . + - _"]


@pytest.mark.parametrize(
    "lookalike",
    [
        f"p{CYRILLIC_O}ster01",  # Cyrillic o (U+043E) for Latin o
        "p0ster0l",  # digit zero for o, letter l for one
        f"p\u200b{CYRILLIC_O}ster01",  # and a zero-width space on top
    ],
)
def test_a_name_that_looks_like_another_readers_is_refused(client, lookalike):
    UserFactory(username="poster01")

    response = sign_up(client, lookalike)

    assert response.status_code == 200
    assert form_errors(response) == [
        "This public name looks too much like another reader's. Please choose another one."
    ]
    assert not Commenter.objects.filter(user__email="new@example.com").exists()


def test_a_name_that_merely_resembles_another_is_accepted(client):
    UserFactory(username="poster01")

    response = sign_up(client, "poster02")

    assert response.status_code == 302
    assert Commenter.objects.get(user__username="poster02").name_skeleton == "postero2"


def test_bidi_and_zero_width_characters_are_removed_from_a_new_name(client):
    response = sign_up(client, f"{HOSTILE_INVISIBLES}nadia{HOSTILE_INVISIBLES}")

    assert response.status_code == 302
    assert Commenter.objects.get(user__email="new@example.com").user.username == "nadia"


def test_a_right_to_left_name_is_welcome(client):
    response = sign_up(client, "\u0646\u0627\u062f\u064a\u0629")

    assert response.status_code == 302


def test_renaming_a_reader_keeps_their_skeleton_current_and_checks_against_everyone_else():
    poster = UserFactory(username="poster01")
    other = UserFactory(username="harbourwatch")

    assert name_looks_taken(f"p{CYRILLIC_O}ster01")
    assert name_looks_taken("poster01", by_anyone_but=other)
    assert not name_looks_taken("poster01", by_anyone_but=poster)

    poster.username = "tidewatcher"
    poster.save()

    assert Commenter.objects.get(user=poster).name_skeleton == "tidewatcher"
    assert not name_looks_taken("poster01")


def test_the_look_alike_check_is_one_query(django_assert_num_queries):
    UserFactory(username="poster01")

    with django_assert_num_queries(1):
        assert name_looks_taken(f"p{CYRILLIC_O}ster01")


def test_the_migration_gives_existing_readers_their_skeletons():
    migration = importlib.import_module("comments.migrations.0004_commenter_name_skeleton")
    kept = UserFactory(username="poster01")
    missing = UserFactory(username="Harbour_Watch")
    Commenter.objects.update(name_skeleton="")
    Commenter.objects.filter(user=missing).delete()

    migration.store_name_skeletons(apps, None)

    assert Commenter.objects.get(user=kept).name_skeleton == "posterol"
    assert Commenter.objects.get(user=missing).name_skeleton == "harbour_watch"


def test_signed_in_header_shows_the_public_name_isolated_and_never_the_email(client):
    reader = UserFactory(username="\u0646\u0627\u062f\u064a\u0629", email="nadia@example.com")
    client.force_login(reader)

    html = client.get("/").content.decode()

    assert f"<bdi>{reader.username}</bdi>" in html
    assert "nadia@example.com" not in html


@pytest.mark.parametrize("url", ["/accounts/login/", "/accounts/signup/", "/accounts/logout/"])
def test_account_pages_say_log_in_not_sign_in(client, url):
    if url.endswith("logout/"):
        client.force_login(UserFactory())

    html = client.get(url).content.decode()

    assert "Sign In" not in html and "sign in" not in html.lower()
    assert "Sign Out" not in html and "sign out" not in html.lower()


def test_log_in_page_uses_log_in_for_its_title_heading_and_button(client):
    html = client.get("/accounts/login/").content.decode()

    assert "<title>Log in · " in html
    assert "<h1>Log in</h1>" in html
    assert re.search(r"<button[^>]*>\s*Log in\s*</button>", html)


def test_logging_in_greets_the_reader_by_public_name(client):
    reader = UserFactory(username="tidewatcher")

    response = client.post("/accounts/login/", {"login": reader.email, "password": PASSWORD}, follow=True)

    assert "Logged in as tidewatcher." in response.content.decode()
