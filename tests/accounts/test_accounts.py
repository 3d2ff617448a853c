"""Accounts: sign-up with mandatory verification, log in by email, next= round trips, rate limits."""

import re

import pytest
from django.core import mail

from tests.conftest import PASSWORD
from tests.factories import StoryFactory, UserFactory

pytestmark = pytest.mark.django_db


def log_in(client, email: str, password: str = PASSWORD, next_url: str = ""):
    data = {"login": email, "password": password}
    if next_url:
        data["next"] = next_url
    return client.post("/accounts/login/", data)


def test_sign_up_sends_a_verification_mail_and_verifying_signs_the_reader_in(client):
    response = client.post(
        "/accounts/signup/",
        {"email": "ana@example.com", "username": "ana", "password1": PASSWORD, "password2": PASSWORD},
    )

    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/confirm-email/[^\s]+)", mail.outbox[0].body).group(1)
    client.post(link)
    assert b"<bdi>ana</bdi>" in client.get("/").content


def test_unverified_reader_cannot_log_in(client):
    UserFactory(email="unverified@example.com", verified=False)

    response = log_in(client, "unverified@example.com")

    assert response["Location"] == "/accounts/confirm-email/"
    assert "_auth_user_id" not in client.session


def test_log_in_by_email_returns_to_the_story_comments(client):
    reader = UserFactory()
    story = StoryFactory()
    next_url = f"{story.get_absolute_url()}#comments"

    response = log_in(client, reader.email, next_url=next_url)

    assert response.status_code == 302
    assert response["Location"] == next_url


def test_next_cannot_send_the_reader_to_another_site(client):
    reader = UserFactory()

    response = log_in(client, reader.email, next_url="https://evil.example.net/")

    assert response["Location"] == "/"


def test_repeated_failed_logins_are_rate_limited(client):
    reader = UserFactory()

    for _ in range(5):
        log_in(client, reader.email, password="wrong password")
    response = log_in(client, reader.email)

    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()


def test_signup_floods_from_one_address_get_429(client, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "3/m/ip"}

    statuses = [
        client.post("/accounts/signup/", {"email": f"flood{n}@example.com", "username": f"flood{n}"}).status_code
        for n in range(5)
    ]

    assert statuses[-1] == 429


def test_password_reset_does_not_reveal_whether_an_email_has_an_account(client):
    UserFactory(email="known@example.com")

    known = client.post("/accounts/password/reset/", {"email": "known@example.com"})
    unknown = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})

    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]


def test_admin_login_goes_through_the_rate_limited_account_login(client):
    response = client.get("/admin/login/?next=/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_account_pages_use_the_site_layout(client):
    html = client.get("/accounts/login/").content.decode()

    assert 'class="site-header"' in html
    assert 'class="form-box"' in html
