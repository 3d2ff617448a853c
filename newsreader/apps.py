from celery.signals import setup_logging
from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


class NewsreaderConfig(AppConfig):
    """The site's infrastructure: metrics, structured logs and error reporting, in web and Celery processes."""

    name = "newsreader"
    verbose_name = "Newsreader"

    def ready(self) -> None:
        # observability connects the signal handlers that feed /metrics and the logs.
        # authentication connects the receivers that drop a changed account from the cache.
        from . import authentication, clientaddr, observability, site_parts, sites  # noqa: F401 - site_parts registers its parts

        # A mistyped TRUSTED_PROXIES or METRICS_ALLOWED_NETWORKS stops every process at startup, not the
        # first request behind the proxy or the first scrape.
        clientaddr.trusted_networks()
        observability.allowed_networks()
        # Every migrate (and every test database) ends with the Sites row naming this site. Sent for apps
        # with models only, so on the sites app's signal; its own receiver, connected earlier, runs first.
        post_migrate.connect(
            sites.sync_site_after_migrate, sender=self.apps.get_app_config("sites"), dispatch_uid="newsreader.sync_site"
        )

        if settings.LOG_FORMAT == "json":
            # Celery configures logging itself unless someone answers this signal.
            setup_logging.connect(observability.use_django_logging, weak=False)
