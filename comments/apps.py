from django.apps import AppConfig


class CommentsConfig(AppConfig):
    name = "comments"
    verbose_name = "Comments"

    def ready(self) -> None:
        from stories import extensions

        from . import demo, parts, signals, views  # noqa: F401  (signals: receivers; parts: the thread's personal parts)

        extensions.story_page_context.connect(views.story_page_comments, dispatch_uid="comments.story_page")
        extensions.demo_stories_loaded.connect(demo.load_demo_conversations, dispatch_uid="comments.demo")
