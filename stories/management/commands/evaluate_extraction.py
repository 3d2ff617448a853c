"""Measure full-text extraction on a folder of saved pages with known must-have and must-not-have snippets.

The folder holds ``html/`` and ``evaldata_subset.json`` (per URL: ``file``, ``with`` and ``without``).
"""

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from newsreader.sanitize import html_to_text, sanitize_html
from stories.importing.extract import extract_article


@dataclass(frozen=True)
class ExtractionScores:
    articles: int
    extracted: int
    snippets_wanted: int
    snippets_found: int
    boilerplate: int
    boilerplate_kept_out: int
    seconds: float

    @property
    def found_share(self) -> float:
        return self.snippets_found / self.snippets_wanted if self.snippets_wanted else 0.0

    @property
    def kept_out_share(self) -> float:
        return self.boilerplate_kept_out / self.boilerplate if self.boilerplate else 0.0

    @property
    def articles_per_second(self) -> float:
        return self.articles / self.seconds if self.seconds else 0.0


def evaluate_extraction(directory: Path) -> ExtractionScores:
    """Extract every page listed in the folder's evaluation file and score what reaches a reader."""
    cases = json.loads((directory / "evaldata_subset.json").read_text(encoding="utf-8"))
    pages = {url: (directory / "html" / case["file"]).read_bytes() for url, case in cases.items()}
    counts = dict.fromkeys(("extracted", "wanted", "found", "boilerplate", "kept_out"), 0)
    extractor_logger = logging.getLogger("trafilatura")
    level = extractor_logger.level
    # trafilatura logs every page it finds odd; the scores say what matters here.
    extractor_logger.setLevel(logging.ERROR)
    try:
        started = time.perf_counter()
        texts = {url: _reader_text(page, url) for url, page in pages.items()}
        seconds = time.perf_counter() - started
    finally:
        extractor_logger.setLevel(level)
    for url, case in cases.items():
        text = texts[url]
        counts["extracted"] += bool(text)
        wanted = [_words(snippet) for snippet in case.get("with", [])]
        unwanted = [_words(snippet) for snippet in case.get("without", [])]
        counts["wanted"] += len(wanted)
        counts["found"] += sum(snippet in text for snippet in wanted)
        counts["boilerplate"] += len(unwanted)
        counts["kept_out"] += sum(snippet not in text for snippet in unwanted)
    return ExtractionScores(
        articles=len(cases),
        extracted=counts["extracted"],
        snippets_wanted=counts["wanted"],
        snippets_found=counts["found"],
        boilerplate=counts["boilerplate"],
        boilerplate_kept_out=counts["kept_out"],
        seconds=seconds,
    )


def _reader_text(page: bytes, url: str) -> str:
    article = extract_article(html=page, url=url)
    return html_to_text(sanitize_html(article.body_html)) if article else ""


def _words(text: str) -> str:
    return " ".join(text.split())


class Command(BaseCommand):
    help = "Score full-text extraction on saved pages: must-have snippets found, boilerplate kept out, speed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("directory", type=Path, help="Folder with html/ and evaldata_subset.json.")

    def handle(self, *args, directory: Path, **options) -> None:
        if not (directory / "evaldata_subset.json").is_file() or not (directory / "html").is_dir():
            raise CommandError(f"{directory} has no evaldata_subset.json and html/ folder")
        scores = evaluate_extraction(directory)
        self.stdout.write(f"Articles:             {scores.articles} ({scores.extracted} with main text)")
        self.stdout.write(
            f"Must-have found:      {scores.found_share:.1%} ({scores.snippets_found} of {scores.snippets_wanted})"
        )
        self.stdout.write(
            f"Boilerplate kept out: {scores.kept_out_share:.1%} ({scores.boilerplate_kept_out} of {scores.boilerplate})"
        )
        self.stdout.write(f"Speed:                {scores.articles_per_second:.1f} articles a second")
