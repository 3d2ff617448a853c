"""Import sources from an OPML file, or export all sources as OPML."""

import sys

from django.core.management.base import BaseCommand, CommandError

from stories.importing.opml import OPMLError, export_opml, import_opml
from stories.models import Source


class Command(BaseCommand):
    help = "opml import FILE | opml export [FILE]: move sources in and out in the format feed readers share."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["import", "export"])
        parser.add_argument("file", nargs="?", help="OPML file; export writes to standard output without one.")

    def handle(self, *args, action: str, file: str | None, **options) -> None:
        if action == "export":
            content = export_opml(Source.objects.all())
            if file:
                with open(file, "wb") as handle:
                    handle.write(content)
            else:
                sys.stdout.buffer.write(content)
            return
        if not file:
            raise CommandError("Give the OPML file to import.")
        with open(file, "rb") as handle:
            try:
                created, skipped = import_opml(handle.read())
            except OPMLError as error:
                raise CommandError(str(error)) from error
        self.stdout.write(self.style.SUCCESS(f"{len(created)} sources added, {skipped} skipped."))
