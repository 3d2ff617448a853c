"""`manage.py evaluate_labeller`: metrics on a CSV the test writes, and the floors on the shared dev sets."""

import csv
import io
import re

import pytest
from django.core.management import CommandError, call_command

from stories.labelling.base import Label, Labeller, StoryText
from stories.labelling.embedded import embedded_labeller
from stories.labelling.evaluate import (
    DATASET_MAPPINGS,
    LabelledStory,
    evaluate,
    read_labelled_csv,
    repair_text,
)
from tests.conftest import shared_data
from tests.llm_server import llm_server  # noqa: F401

# Written for this test, in the BBC data set's label vocabulary.
TINY_DATA_SET = [
    (
        "Striker's late goal wins the derby",
        "The striker scored in injury time as the home side beat their rivals.",
        "sport",
    ),
    (
        "Shares tumble after profit warning",
        "The retailer's shares fell after it warned profits would miss forecasts.",
        "business",
    ),
    (
        "Band announces a world tour",
        "The singer and her band will play forty concerts to promote the new album.",
        "entertainment",
    ),
    (
        "Minister faces revolt over school reform",
        "Backbench MPs threatened to vote against the government's bill.",
        "politics",
    ),
    (
        "New chip doubles laptop battery life",
        "The processor uses less power, letting laptops and phones run longer.",
        "tech",
    ),
]


def write_csv(path, rows, header=("title", "text", "label")):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_the_command_prints_accuracy_macro_f1_confusion_and_speed(tmp_path):
    path = write_csv(tmp_path / "tiny.csv", TINY_DATA_SET)
    out = io.StringIO()

    call_command("evaluate_labeller", str(path), "--mapping", "bbc", "--labeller", "embedded", stdout=out)

    output = out.getvalue()
    labeller = embedded_labeller()
    mapping = DATASET_MAPPINGS["bbc"].labels
    correct = sum(
        labeller.label(StoryText(title=title, text=text)).section == mapping[label]
        for title, text, label in TINY_DATA_SET
    )
    assert f"Accuracy: {correct / len(TINY_DATA_SET):.3f}" in output
    assert "Stories: 5" in output
    assert re.search(r"Macro-F1: \d\.\d{3}", output)
    assert re.search(r"Speed: \d+\.\d stories/s", output)
    assert "Confusion matrix (rows: expected, columns: predicted):" in output
    assert re.search(r"^culture\s+", output, re.MULTILINE)  # entertainment is filed as culture


def test_the_command_evaluates_a_remote_labeller_as_well(tmp_path, settings, llm_server):  # noqa: F811
    settings.OPENAI_BASE_URL = llm_server.base_url
    settings.OPENAI_MODEL = "test-model"
    settings.OPENAI_REQUESTS_PER_MINUTE = 0
    path = write_csv(tmp_path / "tiny.csv", TINY_DATA_SET)
    out = io.StringIO()

    call_command("evaluate_labeller", str(path), "--mapping", "bbc", "--labeller", "openai", stdout=out)

    output = out.getvalue()
    assert "Labeller: openai 1/test-model" in output
    assert "Accuracy: 0.200" in output  # the stand-in model files everything under technology
    assert "choosing only among" not in output  # a remote labeller gives no per-section scores
    assert len(llm_server.requests) == len(TINY_DATA_SET)


def test_a_label_the_mapping_does_not_know_is_an_error_naming_the_line(tmp_path):
    path = write_csv(tmp_path / "odd.csv", [*TINY_DATA_SET[:2], ("Weather", "Rain.", "weather")])
    with pytest.raises(CommandError, match=r"line 4: label 'weather' is not in the bbc mapping"):
        call_command("evaluate_labeller", str(path), "--mapping", "bbc", stdout=io.StringIO())


def test_missing_columns_and_missing_files_are_errors(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [("a", "b")], header=("headline", "body"))
    with pytest.raises(CommandError, match="lacks the column"):
        call_command("evaluate_labeller", str(path), "--mapping", "bbc", stdout=io.StringIO())
    with pytest.raises(CommandError, match="does not exist"):
        call_command("evaluate_labeller", str(tmp_path / "nope.csv"), "--mapping", "bbc", stdout=io.StringIO())


class FixedAnswers(Labeller):
    """Answers a set section per title, so the arithmetic of the report can be checked by hand."""

    name = "fixed"
    version = "1"

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def label(self, story: StoryText) -> Label:
        return Label(
            section=self.answers[story.title],
            tags=(),
            region=None,
            language="en",
            reading_minutes=1,
            dek="",
            confidence={},
            labeller=self.name,
            labeller_version=self.version,
        )


def test_accuracy_macro_f1_and_confusion_are_computed_over_the_data_sets_sections():
    stories = [
        LabelledStory(title="a", text="", expected="sport"),
        LabelledStory(title="b", text="", expected="sport"),
        LabelledStory(title="c", text="", expected="business"),
        LabelledStory(title="d", text="", expected="business"),
    ]
    report = evaluate(
        labeller=FixedAnswers({"a": "sport", "b": "health", "c": "business", "d": "sport"}), stories=stories
    )

    assert report.accuracy == 0.5
    assert report.confusion["sport"] == {"sport": 1, "health": 1}
    assert report.confusion["business"] == {"business": 1, "sport": 1}
    # sport: precision 1/2, recall 1/2; business: precision 1/1, recall 1/2 -> F1 0.5 and 2/3.
    assert report.macro_f1 == pytest.approx((0.5 + 2 / 3) / 2)
    assert report.closed_set_accuracy is None  # this labeller gives no per-section scores


def test_dataset_artefacts_are_repaired_before_labelling():
    assert repair_text("Tigers #39; \\$12M deal quot;done quot;") == 'Tigers \' $12M deal "done "'
    assert repair_text("AT&amp;T &lt;b&gt;") == "AT&T <b>"


@pytest.mark.parametrize(
    ("file_name", "mapping", "accuracy_floor", "closed_set_floor"),
    [("ag_news_dev.csv", "ag_news", 0.69, 0.81), ("bbc_news_dev.csv", "bbc", 0.88, 0.91)],
)
def test_embedded_section_accuracy_on_the_shared_dev_sets(file_name, mapping, accuracy_floor, closed_set_floor):
    stories = read_labelled_csv(shared_data(f"labels/{file_name}"), mapping=DATASET_MAPPINGS[mapping])

    report = evaluate(labeller=embedded_labeller(), stories=stories)

    assert report.total == 400
    assert report.accuracy >= accuracy_floor
    assert report.closed_set_accuracy >= closed_set_floor
