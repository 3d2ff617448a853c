"""The Sites framework names this site (SITE_NAME, SITE_DOMAIN) after every migrate, so mails do too."""

import pytest
from django.contrib.sites.models import Site
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from newsreader.sites import sync_site
from tests.conftest import PASSWORD
from tests.test_settings import run_manage

PRODUCTION = {"DEBUG": "false", "SECRET_KEY": "x7-Qp2vLr9sZ0mK4tWc8yB1nH6jD3fG5aE0uR7iO2pS9lT4kM8vX1zC6bN3qW5eY"}


@pytest.mark.django_db
def test_after_migrate_the_current_site_has_the_configured_name_and_domain(settings):
    site = Site.objects.get_current()

    assert (site.name, site.domain) == (settings.SITE_NAME, settings.SITE_DOMAIN)
    assert site.domain != "example.com"


@pytest.mark.django_db
def test_migrate_puts_a_changed_site_name_and_domain_into_the_site(settings):
    settings.SITE_NAME, settings.SITE_DOMAIN = "Harbour News", "news.harbour.test"
    Site.objects.get_current()  # cached in the process, as in a running site

    call_command("migrate", verbosity=0)

    site = Site.objects.get_current()
    assert (site.name, site.domain) == ("Harbour News", "news.harbour.test")
    assert Site.objects.count() == 1


@pytest.mark.django_db
def test_naming_the_site_again_changes_nothing(settings):
    settings.SITE_NAME = "Harbour News"

    assert sync_site() is True
    assert sync_site() is False


@pytest.mark.django_db
def test_a_site_id_without_a_row_gets_one_and_later_sites_still_get_fresh_ids(settings):
    settings.SITE_ID, settings.SITE_DOMAIN = 7, "news.harbour.test"

    sync_site()

    assert Site.objects.get(pk=7).domain == "news.harbour.test"
    assert Site.objects.create(domain="other.harbour.test", name="Other").pk > 7


@pytest.mark.django_db
def test_a_site_name_the_sites_framework_cannot_store_is_refused_with_a_clear_message(settings):
    settings.SITE_NAME = "A news site whose name is far longer than the fifty characters allowed"

    with pytest.raises(ImproperlyConfigured, match=r"SITE_NAME .* cannot name the site"):
        sync_site()


@pytest.mark.django_db
def test_a_new_readers_verification_mail_names_the_site_not_example_com(client, settings):
    client.post(
        "/accounts/signup/",
        {"email": "ana@harbour.test", "username": "ana", "password1": PASSWORD, "password2": PASSWORD},
    )

    [message] = mail.outbox
    assert message.subject.startswith(f"[{settings.SITE_NAME}]")
    assert f"Hello from {settings.SITE_NAME}!" in message.body
    assert "example.com" not in message.subject + message.body


def test_site_domain_defaults_to_the_first_allowed_host_that_is_not_a_wildcard():
    result = run_manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SITE_DOMAIN)",
        env={**PRODUCTION, "ALLOWED_HOSTS": ".harbour.test,*,news.harbour.test,www.harbour.test"},
    )

    assert result.stdout.strip().splitlines()[-1] == "news.harbour.test", result.stderr


def test_check_deploy_warns_when_no_site_domain_can_be_found():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION, "ALLOWED_HOSTS": "*"})

    assert result.returncode != 0
    assert "newsreader.W001" in result.stderr + result.stdout
