from django.apps import AppConfig


class StoriesConfig(AppConfig):
    name = "stories"
    verbose_name = "Stories"

    def ready(self) -> None:
        from . import signals, status  # noqa: F401  (receivers)
        from .importing.parse import assert_xml_parser_is_safe

        # Refuse to start where a feed could make the XML parser expand entities without bound.
        assert_xml_parser_is_safe()
