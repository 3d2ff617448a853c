"""Every feed of the public conformance corpora goes through our parser: well-formed feeds keep the
entries feedparser finds in them, broken ones give entries or a FeedParseError, and nothing else escapes.

One test per corpus, looping inside and reporting every failure at once: thousands of parametrized
cases would be slow and unreadable.
"""

import io
import re
from datetime import UTC
from pathlib import Path

import feedparser
import pytest

from stories.importing.parse import FeedParseError, parse_feed
from tests.conftest import shared_data

# Each corpus file may name the HTTP headers it is meant to be served with, one `Header:` line each.
HEADER_LINE = re.compile(rb"^Header:\s*([\w-]+):[ \t]*(.*?)\s*$", re.MULTILINE)
FEED_SUFFIXES = (".xml", ".json", ".opml")


def corpus(relative: str) -> list[Path]:
    return sorted(path for path in shared_data(relative).rglob("*") if path.suffix in FEED_SUFFIXES)


def served_headers(content: bytes) -> dict[str, str]:
    return {name.decode(): value.decode("latin-1") for name, value in HEADER_LINE.findall(content[:4096])}


def entry_problems(feed) -> list[str]:
    problems = []
    for index, entry in enumerate(feed.entries):
        if entry.published is not None and entry.published.tzinfo is not UTC:
            problems.append(f"entry {index} date {entry.published!r} is not UTC")
        if entry.link and not entry.link.startswith(("http://", "https://")):
            problems.append(f"entry {index} link {entry.link!r} is not absolute")
        problems.extend(
            f"entry {index} image {image.url!r} is not a web URL"
            for image in entry.images
            if not image.url.startswith(("http://", "https://"))
        )
    return problems


def check(path: Path, *, compare_with_feedparser: bool) -> tuple[list[str], bool]:
    """The failures for one file, and whether feedparser found entries to compare with."""
    content = path.read_bytes()
    headers = served_headers(content)
    url = f"http://example.com/{path.name}"
    try:
        feed = parse_feed(content=content, url=url, headers=headers)
    except FeedParseError as error:
        if not str(error):
            return [f"{path}: FeedParseError without a message"], False
        entries = None
    except Exception as error:
        return [f"{path}: {type(error).__name__}: {error}"], False
    else:
        entries = len(feed.entries)
        problems = [f"{path}: {problem}" for problem in entry_problems(feed)]
        if problems:
            return problems, False
    if not compare_with_feedparser:
        return [], False
    lowered = {name.lower(): value for name, value in headers.items()}
    expected = len(feedparser.parse(io.BytesIO(content), response_headers=lowered).entries)
    if expected and entries != expected:
        return [f"{path}: {entries} entries where feedparser finds {expected}"], True
    return [], bool(expected)


def run(relative: str, *, compare_with_feedparser: bool, at_least: int, at_least_compared: int = 0) -> None:
    paths = corpus(relative)
    assert len(paths) >= at_least, f"expected at least {at_least} feeds under {relative}, found {len(paths)}"
    failures, compared = [], 0
    for path in paths:
        problems, had_entries = check(path, compare_with_feedparser=compare_with_feedparser)
        failures.extend(problems)
        compared += had_entries
    assert not failures, f"{len(failures)} of {len(paths)} feeds failed:\n" + "\n".join(failures[:50])
    assert compared >= at_least_compared, f"feedparser found entries in only {compared} feeds under {relative}"


@pytest.mark.timeout(240)
def test_feedparser_wellformed_feeds_keep_their_entries():
    run("feeds/wellformed/feedparser", compare_with_feedparser=True, at_least=1700, at_least_compared=1000)


@pytest.mark.timeout(120)
def test_entity_encoding_and_json_feeds_keep_their_entries():
    run("feeds/wellformed/feedparser_entities", compare_with_feedparser=True, at_least=250, at_least_compared=1)
    run("feeds/wellformed/feedparser_encoding", compare_with_feedparser=True, at_least=70, at_least_compared=10)
    run("feeds/wellformed/feedparser_json", compare_with_feedparser=True, at_least=1)


@pytest.mark.timeout(120)
def test_feedvalidator_html_security_feeds_keep_their_entries():
    run(
        "feeds/wellformed/feedvalidator_html_security",
        compare_with_feedparser=True,
        at_least=200,
        at_least_compared=150,
    )


@pytest.mark.timeout(120)
def test_illformed_feeds_give_entries_or_a_clear_error():
    run("feeds/illformed", compare_with_feedparser=False, at_least=300)
