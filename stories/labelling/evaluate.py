"""Measure a labeller's sections against a labelled CSV (title,text,label): accuracy, macro-F1, confusion, speed.

Each data set's labels map to our sections through one table in DATASET_MAPPINGS. The data sets
are only ever read to measure: nothing derived from them is kept.
"""

import csv
import html
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stories.labelling.base import Labeller, StoryText
from stories.labelling.sections import SECTION_SLUGS

NO_SECTION = "(none)"


@dataclass(frozen=True)
class DatasetMapping:
    """How one data set's labels translate into our sections."""

    name: str
    description: str
    labels: dict[str, str]


DATASET_MAPPINGS = {
    "ag_news": DatasetMapping(
        name="ag_news",
        description="AG News (news wire, four topics). Its World covers international news; Sci/Tech covers "
        "computing and science, which our Technology section files together.",
        labels={"World": "world", "Sports": "sport", "Business": "business", "Sci/Tech": "technology"},
    ),
    "bbc": DatasetMapping(
        name="bbc",
        description="BBC News (full articles, five topics). Entertainment is our Culture; politics is domestic "
        "(UK) politics, our Politics.",
        labels={
            "business": "business",
            "entertainment": "culture",
            "politics": "politics",
            "sport": "sport",
            "tech": "technology",
        },
    ),
}


class EvaluationDataError(ValueError):
    """The CSV cannot be evaluated: missing columns or a label the mapping does not know."""


@dataclass(frozen=True)
class LabelledStory:
    title: str
    text: str
    expected: str


# AG News writes entities without their ampersand ("#39;", "quot;") and escapes dollars as "\$".
_BARE_NUMERIC_ENTITY = re.compile(r"(?<!&)#(\d{1,5});")
_BARE_NAMED_ENTITY = re.compile(r"(?<![&\w])(quot|amp|lt|gt|apos);")


def repair_text(value: str) -> str:
    value = _BARE_NUMERIC_ENTITY.sub(r"&#\1;", value.replace("\\$", "$"))
    value = _BARE_NAMED_ENTITY.sub(r"&\1;", value)
    return " ".join(html.unescape(value).split())


def read_labelled_csv(path: Path, *, mapping: DatasetMapping) -> list[LabelledStory]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"title", "text", "label"} - set(reader.fieldnames or ())
        if missing:
            raise EvaluationDataError(f"{path} lacks the column(s) {', '.join(sorted(missing))}.")
        stories = []
        for line, row in enumerate(reader, start=2):
            label = (row["label"] or "").strip()
            if label not in mapping.labels:
                raise EvaluationDataError(
                    f"{path}, line {line}: label {label!r} is not in the {mapping.name} mapping "
                    f"({', '.join(sorted(mapping.labels))})."
                )
            title, body = repair_text(row["title"] or ""), repair_text(row["text"] or "")
            stories.append(LabelledStory(title=title, text=body, expected=mapping.labels[label]))
    return stories


@dataclass(frozen=True)
class SectionScore:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class EvaluationReport:
    labeller: str
    total: int
    accuracy: float
    macro_f1: float
    per_section: dict[str, SectionScore]
    confusion: dict[str, Counter]
    seconds: float
    # Accuracy when the labeller may only choose among the data set's own sections (None when it gives no scores).
    closed_set_accuracy: float | None

    @property
    def stories_per_second(self) -> float:
        return self.total / self.seconds if self.seconds else 0.0


def evaluate(*, labeller: Labeller, stories: Sequence[LabelledStory]) -> EvaluationReport:
    """Label every story one at a time, as the worker does, and compare the sections with the expected ones."""
    expected_sections = sorted({story.expected for story in stories}, key=SECTION_SLUGS.index)
    confusion: dict[str, Counter] = {section: Counter() for section in expected_sections}
    correct = closed_correct = 0
    closed_possible = True
    started = time.perf_counter()
    for story in stories:
        label = labeller.label(StoryText(title=story.title, text=story.text))
        predicted = label.section or NO_SECTION
        confusion[story.expected][predicted] += 1
        correct += predicted == story.expected
        if label.section_scores:
            closed = max(expected_sections, key=lambda section: label.section_scores.get(section, 0.0))
            closed_correct += closed == story.expected
        else:
            closed_possible = False
    seconds = time.perf_counter() - started

    per_section = {}
    for section in expected_sections:
        true_positives = confusion[section][section]
        predicted_total = sum(row[section] for row in confusion.values())
        support = sum(confusion[section].values())
        precision = true_positives / predicted_total if predicted_total else 0.0
        recall = true_positives / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_section[section] = SectionScore(precision=precision, recall=recall, f1=f1, support=support)
    total = len(stories)
    return EvaluationReport(
        labeller=f"{labeller.name} {labeller.version}",
        total=total,
        accuracy=correct / total if total else 0.0,
        macro_f1=sum(score.f1 for score in per_section.values()) / len(per_section) if per_section else 0.0,
        per_section=per_section,
        confusion=confusion,
        seconds=seconds,
        closed_set_accuracy=(closed_correct / total if total else 0.0) if closed_possible else None,
    )


def format_report(report: EvaluationReport) -> str:
    predicted_columns = [
        section for section in (*SECTION_SLUGS, NO_SECTION) if any(row[section] for row in report.confusion.values())
    ]
    width = max(len(name) for name in (*predicted_columns, *report.confusion, "expected")) + 2
    lines = [
        f"Labeller: {report.labeller}",
        f"Stories: {report.total}",
        f"Accuracy: {report.accuracy:.3f}",
        f"Macro-F1: {report.macro_f1:.3f} (over the data set's sections)",
    ]
    if report.closed_set_accuracy is not None:
        lines.append(f"Accuracy choosing only among the data set's sections: {report.closed_set_accuracy:.3f}")
    lines += [
        f"Speed: {report.stories_per_second:.1f} stories/s ({report.seconds:.2f} s, one process, model already loaded)",
        "",
        "Per section:  precision  recall  F1     support",
    ]
    for section, score in report.per_section.items():
        lines.append(
            f"  {section:<{width}}{score.precision:>6.3f}  {score.recall:>6.3f}  {score.f1:.3f}  {score.support:>5}"
        )
    lines += ["", "Confusion matrix (rows: expected, columns: predicted):"]
    lines.append("".ljust(width) + "".join(column.rjust(width) for column in predicted_columns))
    for expected, row in report.confusion.items():
        lines.append(expected.ljust(width) + "".join(str(row[column]).rjust(width) for column in predicted_columns))
    return "\n".join(lines)
