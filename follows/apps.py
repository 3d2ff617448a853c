from django.apps import AppConfig


class FollowsConfig(AppConfig):
    name = "follows"
    verbose_name = "Following, saved stories and digests"

    def ready(self) -> None:
        from . import parts  # noqa: F401 - registers the follow buttons' personal parts
