"""`manage.py evaluate_labeller FILE.csv --mapping NAME`: a labeller's section accuracy on a labelled CSV.

With `--corrections POOL.csv` it prints the learning curve instead: the embedded labeller after fitting, as
the product does, on N stories per section drawn from the pool as moderators' corrections.
"""

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from stories.labelling.base import LabellingError
from stories.labelling.embedded import EmbeddedLabeller
from stories.labelling.evaluate import (
    DATASET_MAPPINGS,
    EvaluationDataError,
    evaluate,
    format_learning_curve,
    format_report,
    learning_curve,
    pool_without,
    read_labelled_csv,
)
from stories.labelling.service import get_labeller

DEFAULT_CURVE = (0, 5, 20, 50)


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
        parser.add_argument(
            "--corrections",
            metavar="POOL.csv",
            type=Path,
            default=None,
            help="Labelled stories (same columns and labels) to draw simulated corrections from: prints the "
            "learning curve of the embedded labeller.",
        )
        parser.add_argument(
            "--per-section",
            metavar="N",
            type=int,
            nargs="+",
            default=None,
            help=f"Corrections drawn per section, one row each (default: {' '.join(map(str, DEFAULT_CURVE))}).",
        )
        parser.add_argument("--seeds", type=int, default=5, help="Draws averaged per row (default 5).")

    def handle(self, *args, csv_path: Path, mapping: str, labeller: str | None, limit: int | None, **options) -> None:
        dataset = DATASET_MAPPINGS[mapping]
        stories = self._read(csv_path, dataset)
        if limit is not None:
            stories = stories[:limit]
        if not stories:
            raise CommandError(f"{csv_path} has no stories to evaluate.")
        if options["corrections"] is not None:
            self._learning_curve(stories, dataset, csv_path=csv_path, labeller=labeller, **options)
            return
        if options["per_section"] is not None:
            raise CommandError("--per-section needs --corrections POOL.csv to draw the corrections from.")
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

    def _read(self, path: Path, dataset):
        if not path.is_file():
            raise CommandError(f"{path} does not exist or is not a file.")
        try:
            return read_labelled_csv(path, mapping=dataset)
        except EvaluationDataError as error:
            raise CommandError(str(error)) from error

    def _learning_curve(
        self,
        stories,
        dataset,
        *,
        csv_path: Path,
        labeller: str | None,
        corrections: Path,
        per_section,
        seeds: int,
        **options,
    ) -> None:
        if seeds < 1:
            raise CommandError("--seeds must be at least 1.")
        counts = per_section or DEFAULT_CURVE
        if any(count < 0 for count in counts):
            raise CommandError("--per-section takes counts of 0 or more.")
        pool = pool_without(stories, self._read(corrections, dataset))
        try:
            chosen = get_labeller(labeller or "embedded")
        except LabellingError as error:
            raise CommandError(str(error)) from error
        if not isinstance(chosen, EmbeddedLabeller):
            raise CommandError("Only the embedded labeller learns from corrections; use --labeller embedded.")
        self.stdout.write(
            f"Learning curve on {csv_path.name} ({len(stories)} stories, {dataset.name}); corrections drawn from "
            f"{corrections.name} ({len(pool)} stories not in {csv_path.name}); rows averaged over {seeds} seed(s)."
        )
        self.stdout.write(
            f"Fitted as the product does: at least {settings.LABELLER_MIN_CORRECTIONS_PER_SECTION} corrections per "
            f"section, {settings.LABELLER_HELD_OUT_SHARE:.0%} held out to decide promotion; each simulated correction "
            "comes from a different moderator."
        )
        points = learning_curve(
            labeller=chosen.with_section_models([]),
            stories=stories,
            pool=pool,
            per_section=counts,
            seeds=seeds,
            min_per_section=settings.LABELLER_MIN_CORRECTIONS_PER_SECTION,
            max_moderator_share=settings.LABELLER_MAX_MODERATOR_SHARE,
            held_out_share=settings.LABELLER_HELD_OUT_SHARE,
        )
        self.stdout.write(format_learning_curve(points))
