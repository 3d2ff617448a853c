"""Relabel stories in bulk, filtered by source, section and date; moderators' corrections are kept."""

from datetime import date

from django.core.management.base import BaseCommand

from stories.labelling.service import label_story
from stories.models import Story


class Command(BaseCommand):
    help = "Relabel stories now (in this process). Filters combine."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--source", help="Source slug.")
        parser.add_argument("--section", help="Section slug (the current label).")
        parser.add_argument("--since", type=date.fromisoformat, help="Published on or after YYYY-MM-DD.")
        parser.add_argument("--until", type=date.fromisoformat, help="Published on or before YYYY-MM-DD.")
        parser.add_argument("--unlabelled", action="store_true", help="Only stories not labelled yet.")

    def handle(self, *args, **options) -> None:
        stories = Story.objects.all()
        if options["source"]:
            stories = stories.filter(source__slug=options["source"])
        if options["section"]:
            stories = stories.filter(section__slug=options["section"])
        if options["since"]:
            stories = stories.filter(published_at__date__gte=options["since"])
        if options["until"]:
            stories = stories.filter(published_at__date__lte=options["until"])
        if options["unlabelled"]:
            stories = stories.filter(ai_labelled=False)
        story_ids = list(stories.order_by("pk").values_list("pk", flat=True))
        total = len(story_ids)
        for done, story_id in enumerate(story_ids, start=1):
            label_story(story_id=story_id)
            self._progress(done, total)
        self.stdout.write(self.style.SUCCESS(f"\nRelabelled {total} stories."))

    def _progress(self, done: int, total: int, width: int = 40) -> None:
        filled = width * done // total
        self.stdout.write(f"\r[{'#' * filled}{'-' * (width - filled)}] {done}/{total}", ending="")
        self.stdout.flush()
