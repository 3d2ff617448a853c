"""Failed logins are throttled per client address with 429 Too Many Requests, so that nobody can lock a
reader out by failing to log in with the reader's email from somewhere else."""

import pytest

from tests.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOGIN_URL = "/accounts/login/"


def log_in(client, email: str, *, password: str = PASSWORD, **meta):
    return client.post(LOGIN_URL, {"login": email, "password": password}, **meta)


def fail_until_throttled(client, email: str, **meta) -> list[int]:
    return [log_in(client, email, password="not the password", **meta).status_code for _ in range(6)]


def test_an_address_failing_to_log_in_is_answered_429(client):
    reader = UserFactory()

    statuses = fail_until_throttled(client, reader.email, REMOTE_ADDR="203.0.113.7")

    assert statuses[:5] == [200] * 5
    assert statuses[5] == 429
    throttled = log_in(client, reader.email, REMOTE_ADDR="203.0.113.7")
    assert throttled.status_code == 429
    assert "Too many attempts" in throttled.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_stranger_failing_with_a_readers_email_does_not_lock_the_reader_out(client):
    reader = UserFactory()
    assert fail_until_throttled(client, reader.email, REMOTE_ADDR="198.51.100.66")[-1] == 429

    response = log_in(client, reader.email, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(reader.pk)


def test_behind_a_proxy_each_forwarded_client_has_its_own_limit(client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    reader = UserFactory()
    stranger = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.66"}
    assert fail_until_throttled(client, reader.email, **stranger)[-1] == 429

    response = log_in(client, reader.email, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7")

    assert response.status_code == 302


def test_a_successful_login_does_not_count_against_the_address(client):
    reader = UserFactory()

    for _ in range(6):
        assert log_in(client, reader.email, REMOTE_ADDR="203.0.113.7").status_code == 302
        client.logout()
