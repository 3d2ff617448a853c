"""Measure a labeller's sections against a labelled CSV (title,text,label): accuracy, macro-F1, confusion, speed,
and the learning curve: the same figures after the labeller learns from N simulated corrections per section.

Each data set's labels map to our sections through one table in DATASET_MAPPINGS. The data sets
are only ever read to measure: nothing derived from them is kept.
"""

import csv
import html
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stories.labelling import learning
from stories.labelling.base import Labeller, StoryText
from stories.labelling.embedded import EmbeddedLabeller
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


@dataclass(frozen=True)
class CurvePoint:
    """The labeller after learning from `per_section` corrections per section, averaged over the seeds."""

    per_section: int
    seeds: int
    accuracy: float
    closed_set_accuracy: float | None
    macro_f1: float
    stories_per_second: float
    fit_seconds: float
    # Share of the seeds whose version scored at least as well as the prior on its held-out corrections
    # (as in the product, a version that did not is not used).
    promoted: float | None


def pool_without(stories: Sequence[LabelledStory], pool: Sequence[LabelledStory]) -> list[LabelledStory]:
    """The pool less any story that is also among the evaluated ones."""
    evaluated = {(story.title, story.text) for story in stories}
    return [story for story in pool if (story.title, story.text) not in evaluated]


def draw_corrections(pool: Sequence[LabelledStory], *, per_section: int, seed: int) -> list[learning.SectionExample]:
    """`per_section` stories of each of the pool's sections, as corrections by as many different moderators."""
    rng = random.Random(seed)
    by_section: dict[str, list[int]] = {}
    for index, story in enumerate(pool):
        by_section.setdefault(story.expected, []).append(index)
    chosen = sorted(
        index
        for section in sorted(by_section)
        for index in rng.sample(by_section[section], min(per_section, len(by_section[section])))
    )
    return [
        learning.SectionExample(
            key=index + 1, title=pool[index].title, text=pool[index].text, section=pool[index].expected, moderator=index
        )
        for index in chosen
    ]


def learning_curve(
    *,
    labeller: EmbeddedLabeller,
    stories: Sequence[LabelledStory],
    pool: Sequence[LabelledStory],
    per_section: Sequence[int],
    seeds: int,
    min_per_section: float,
    max_moderator_share: float,
    held_out_share: float,
) -> list[CurvePoint]:
    """For each N, draw N corrections per section from the pool, fit and promote as the product does, and
    evaluate the result on `stories`. Pool stories that also appear in `stories` are never drawn."""
    pool = pool_without(stories, pool)
    points = []
    for count in per_section:
        runs = []
        for seed in range(seeds if count else 1):
            fit_seconds, promoted, models = 0.0, None, []
            if count:
                fit = learning.fit_from_examples(
                    labeller=labeller,
                    examples=draw_corrections(pool, per_section=count, seed=seed),
                    min_per_section=min_per_section,
                    max_moderator_share=max_moderator_share,
                    held_out_share=held_out_share,
                )
                fit_seconds, promoted = fit.seconds, fit.held_out_hits >= fit.prior_hits
                models = [fit.model] if promoted and fit.model is not None else []
            report = evaluate(labeller=labeller.with_section_models(models), stories=stories)
            runs.append((report, fit_seconds, promoted))
        closed = [report.closed_set_accuracy for report, _, _ in runs]
        points.append(
            CurvePoint(
                per_section=count,
                seeds=len(runs),
                accuracy=_mean(report.accuracy for report, _, _ in runs),
                closed_set_accuracy=None if None in closed else _mean(closed),
                macro_f1=_mean(report.macro_f1 for report, _, _ in runs),
                stories_per_second=_mean(report.stories_per_second for report, _, _ in runs),
                fit_seconds=_mean(seconds for _, seconds, _ in runs),
                promoted=None if not count else _mean(float(promoted) for _, _, promoted in runs),
            )
        )
    return points


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def format_learning_curve(points: Sequence[CurvePoint]) -> str:
    lines = [
        "corrections/section  accuracy  closed-set  macro-F1  stories/s  fit s  promoted  seeds",
    ]
    for point in points:
        closed = f"{point.closed_set_accuracy:.3f}" if point.closed_set_accuracy is not None else "-"
        promoted = f"{point.promoted:.0%}" if point.promoted is not None else "-"
        lines.append(
            f"{point.per_section:>19}  {point.accuracy:>8.3f}  {closed:>10}  {point.macro_f1:>8.3f}  "
            f"{point.stories_per_second:>9.1f}  {point.fit_seconds:>5.2f}  {promoted:>8}  {point.seeds:>5}"
        )
    lines += [
        "",
        "accuracy: among all our sections; closed-set: choosing only among the data set's sections;",
        "promoted: seeds whose version beat the prior on its held-out corrections (the others label with the prior).",
    ]
    return "\n".join(lines)
