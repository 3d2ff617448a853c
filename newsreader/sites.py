"""Keeps the Sites framework's row for SITE_ID naming this site (SITE_NAME, SITE_DOMAIN), so that
allauth's mails, feeds, the sitemap and notification links never say "example.com"."""

from django.apps import apps as global_apps
from django.apps.config import AppConfig
from django.conf import settings
from django.contrib.sites import models as sites_models
from django.core import checks
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, router


def sync_site(*, using: str = DEFAULT_DB_ALIAS, apps=global_apps, verbosity: int = 1) -> bool:
    """Give the SITE_ID row the configured name and domain. True when it had to change; running it
    again changes nothing."""
    try:
        Site = apps.get_model("sites", "Site")
    except LookupError:
        return False
    if not router.allow_migrate_model(using, Site):
        return False
    site = Site.objects.using(using).filter(pk=settings.SITE_ID).first()
    created = site is None
    if created:
        site = Site(pk=settings.SITE_ID, domain="example.com")
    # Without a domain (the deploy check warns about it) the name is still worth setting.
    wanted = (settings.SITE_NAME, settings.SITE_DOMAIN or site.domain)
    if not created and (site.name, site.domain) == wanted:
        return False
    site.name, site.domain = wanted
    try:
        site.full_clean()
    except ValidationError as error:
        raise ImproperlyConfigured(
            f"SITE_NAME {settings.SITE_NAME!r} or SITE_DOMAIN {settings.SITE_DOMAIN!r} cannot name the site: "
            f"{'; '.join(error.messages)}"
        ) from error
    site.save(using=using)
    if created:
        # The row was written with an explicit id: move the sequence past it, as Django does for example.com.
        with connections[using].cursor() as cursor:
            for statement in connections[using].ops.sequence_reset_sql(no_style(), [Site]):
                cursor.execute(statement)
    # The row was saved through the migration state's model, which the cache's own signal does not hear.
    sites_models.Site.objects.clear_cache()
    if verbosity >= 2:
        print(f"Site {settings.SITE_ID} is now {site.name!r} at {site.domain!r}")
    return True


def sync_site_after_migrate(
    sender: AppConfig, *, using: str = DEFAULT_DB_ALIAS, apps=global_apps, verbosity: int = 1, **kwargs
) -> None:
    """post_migrate receiver: every migrate (and test database) ends with the site named."""
    sync_site(using=using, apps=apps, verbosity=verbosity)


@checks.register(checks.Tags.sites, deploy=True)
def check_site_domain(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Without a domain, mails and absolute links would name whatever the Sites row says."""
    domain = settings.SITE_DOMAIN
    if not domain:
        return [
            checks.Warning(
                "SITE_DOMAIN is empty and ALLOWED_HOSTS names no host to take it from: mails and feeds "
                'will name the site "example.com".',
                hint="Set SITE_DOMAIN to the host readers use, e.g. news.example.org.",
                id="newsreader.W001",
            )
        ]
    if "/" in domain:
        return [
            checks.Warning(
                f"SITE_DOMAIN {domain!r} is a URL; it must be a host name, with a port if not the default one.",
                hint="Write e.g. news.example.org, without scheme or path.",
                id="newsreader.W002",
            )
        ]
    return []
