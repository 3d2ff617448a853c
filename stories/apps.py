from django.apps import AppConfig


class StoriesConfig(AppConfig):
    name = "stories"
    verbose_name = "Stories"

    def ready(self) -> None:
        from . import parts, signals, status  # noqa: F401  (receivers; parts registers the label-report form)
        from .importing import feedparser_patches
        from .importing.parse import assert_xml_parser_is_safe

        # Refuse to start on a feedparser the patches were not written for, or where a feed could make the
        # XML parser expand entities without bound.
        feedparser_patches.apply()
        assert_xml_parser_is_safe()
