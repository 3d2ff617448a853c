from django.apps import AppConfig


class FollowsConfig(AppConfig):
    name = "follows"
    verbose_name = "Following, saved stories and digests"

    def ready(self) -> None:
        from stories import extensions

        from . import views

        extensions.story_page_context.connect(views.story_page_follows, dispatch_uid="follows.story_page")
