"""Bounded work per entry: a feed cannot make the importer build more text than the limits allow, measured
in a fresh process where it counts (peak memory, time), and what reaches a story and a labeller is bounded."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stories.importing import parse
from stories.labelling.base import Label, Labeller, StoryText
from stories.labelling.service import LABELLERS, LABELLING_TEXT_MAX_CHARS, label_story_text
from stories.models import STORY_BODY_MAX_CHARS
from tests.factories import StoryFactory

PEAK_MEMORY_LIMIT_MB = 400
PROJECT_DIR = Path(__file__).resolve().parents[2]

# Parses a feed built from a JSON spec (head + unit * repeat + tail, so the parent never holds it) and
# prints what came out, the seconds parse_feed took and the process's peak memory.
PARSE_IN_CHILD = """
import json, sys, time

import django

django.setup()
from stories.importing.parse import FeedParseError, parse_feed

spec = json.loads(sys.argv[1])
content = (spec["head"] + spec["unit"] * spec["repeat"] + spec["tail"]).encode()
started = time.monotonic()
try:
    feed = parse_feed(content=content, url="https://news.example.org/feed.xml")
except FeedParseError as error:
    outcome = {"refused": str(error)}
else:
    outcome = {
        "entries": [[entry.title, len(entry.summary_html), len(entry.content_html)] for entry in feed.entries],
        "problem": feed.problem,
    }
outcome["feed_bytes"] = len(content)
outcome["seconds"] = time.monotonic() - started
# VmHWM belongs to this program's memory alone; ru_maxrss would also carry the forking parent's peak.
with open("/proc/self/status") as status:
    high_water_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
outcome["peak_mb"] = high_water_kb / 1024
print(json.dumps(outcome))
"""


def parse_in_a_fresh_process(*, head: str, unit: str, repeat: int, tail: str) -> dict:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "newsreader.settings", "DEBUG": "true"}
    spec = json.dumps({"head": head, "unit": unit, "repeat": repeat, "tail": tail})
    finished = subprocess.run(
        [sys.executable, "-c", PARSE_IN_CHILD, spec],
        env=environment,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


ITEM_START = (
    '<rss version="2.0"><channel><title>World news</title><item><title>Big</title>'
    "<link>https://news.example.org/big</link><description>"
)
ITEM_END = "</description></item></channel></rss>"


@pytest.mark.parametrize("one_line", [False, True], ids=["DTD on its own lines", "DTD on one line"])
def test_feed_repeating_an_entity_millions_of_times_is_refused_with_bounded_memory(one_line):
    # The feed that was imported as one story of 160,000,000 characters (33 s, 3.7 GB): 15 MB declaring a
    # 32-character entity and using it 5,000,000 times.
    break_ = "" if one_line else "\n"
    head = f'<?xml version="1.0"?>{break_}<!DOCTYPE rss [{break_}<!ENTITY e "{"x" * 31} ">{break_}]>{break_}'

    outcome = parse_in_a_fresh_process(head=head + ITEM_START, unit="&e;", repeat=5_000_000, tail=ITEM_END)

    assert outcome["feed_bytes"] > 15_000_000
    assert outcome["refused"].startswith(
        "The feed would expand to more than 20,000,000 characters of text: 5,000,000 references to its "
        "entities (&e;) add up to 150,000,000 characters"
    )
    assert outcome["peak_mb"] < PEAK_MEMORY_LIMIT_MB
    assert outcome["seconds"] < 10


def test_an_honest_15_mb_entry_is_cut_to_the_entry_limit_with_bounded_memory():
    outcome = parse_in_a_fresh_process(
        head='<?xml version="1.0"?>\n' + ITEM_START, unit="Every word of a long report. ", repeat=520_000, tail=ITEM_END
    )

    assert outcome["feed_bytes"] > 15_000_000
    assert outcome["entries"] == [["Big", parse.MAX_ENTRY_TEXT_CHARS - len("Big"), 0]]
    assert "1 entry was longer than 1,000,000 characters of text and cut to that length" in outcome["problem"]
    assert outcome["peak_mb"] < PEAK_MEMORY_LIMIT_MB


@pytest.mark.django_db
def test_a_story_body_is_cut_to_the_body_limit_so_its_page_is_bounded(client):
    paragraph = "<p>" + "A sentence of an endless story. " * 30 + "</p>"
    story = StoryFactory(body_html=paragraph * (2 * STORY_BODY_MAX_CHARS // len(paragraph)))

    story.refresh_from_db()
    page = client.get(story.get_absolute_url())

    # Cut inside a paragraph, which the sanitiser then closes.
    assert STORY_BODY_MAX_CHARS - len(paragraph) < len(story.body_html) <= STORY_BODY_MAX_CHARS + len("</p>")
    assert story.body_html.endswith("</p>")
    assert page.status_code == 200
    assert len(page.content) < STORY_BODY_MAX_CHARS + 100_000


class RecordingLabeller(Labeller):
    """Labels every story "world" and remembers the text it was given."""

    name = "recording"
    version = "1"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def label(self, story: StoryText) -> Label:
        self.texts.append(story.text)
        return Label(
            section="world",
            tags=(),
            region=None,
            language="en",
            reading_minutes=1,
            dek="",
            confidence={},
            labeller=self.name,
            labeller_version=self.version,
        )


def test_a_labeller_is_given_only_the_start_of_a_huge_story(monkeypatch, settings):
    labeller = RecordingLabeller()
    monkeypatch.setitem(LABELLERS, "recording", lambda: labeller)
    settings.LABELLER = "recording"
    text = "".join(f"Sentence {n} of a story that never ends. " for n in range(100_000))

    label = label_story_text(title="The endless story", text=text)

    assert label.labeller == "recording"
    assert labeller.texts == [text[:LABELLING_TEXT_MAX_CHARS]]
    assert LABELLING_TEXT_MAX_CHARS == 20_000
