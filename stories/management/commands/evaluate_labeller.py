"""`manage.py evaluate_labeller FILE.csv --mapping NAME`: a labeller's section accuracy on a labelled CSV."""

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from stories.labelling.base import LabellingError
from stories.labelling.evaluate import DATASET_MAPPINGS, EvaluationDataError, evaluate, format_report, read_labelled_csv
from stories.labelling.service import get_labeller


class Command(BaseCommand):
    help = (
        "Label every story of a CSV with columns title,text,label and print accuracy, macro-F1, the confusion "
        "matrix and stories per second. --mapping names the table that maps the data set's labels to our sections."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("csv_path", metavar="FILE.csv", type=Path)
        parser.add_argument("--mapping", required=True, choices=sorted(DATASET_MAPPINGS))
        parser.add_argument("--labeller", default=None, help="Labeller to evaluate (default: the LABELLER setting).")
        parser.add_argument("--limit", type=int, default=None, help="Evaluate only the first N stories.")

    def handle(self, *args, csv_path: Path, mapping: str, labeller: str | None, limit: int | None, **options) -> None:
        if not csv_path.is_file():
            raise CommandError(f"{csv_path} does not exist or is not a file.")
        dataset = DATASET_MAPPINGS[mapping]
        try:
            stories = read_labelled_csv(csv_path, mapping=dataset)
        except EvaluationDataError as error:
            raise CommandError(str(error)) from error
        if limit is not None:
            stories = stories[:limit]
        if not stories:
            raise CommandError(f"{csv_path} has no stories to evaluate.")
        name = labeller or settings.LABELLER
        started = time.perf_counter()
        try:
            chosen = get_labeller(name)
        except LabellingError as error:
            raise CommandError(str(error)) from error
        load_seconds = time.perf_counter() - started
        self.stdout.write(f"Data set: {csv_path.name} ({dataset.name}: {dataset.description})")
        self.stdout.write(f"Labeller ready in {load_seconds:.2f} s")
        try:
            report = evaluate(labeller=chosen, stories=stories)
        except LabellingError as error:
            raise CommandError(f"The {name} labeller failed: {error}") from error
        self.stdout.write(format_report(report))
