"""First-import throughput next to feedparser alone on the same bytes.

For each corpus (a generated feed of 1,000 entries, and the well-formed conformance feeds when ../shared/data
is present) it times `feedparser.parse` on the bytes, with its default options and without our patches that
only make it faster (the floor: feedparser as released), then a first import of the same bytes as the
import task does it: parsing, sanitising, de-duplication keys, similarity signatures, storage in
PostgreSQL with search vectors and tags, and grouping near-duplicates. It prints
entries per second for both and their ratio (the median of --rounds rounds for the generated feed), the
same ratio in CPU time (this process and its PostgreSQL backend, read from /proc: what the ratio would be
without other load on the machine), then the cost of an unchanged feed (a content hash, never a parse).
--breakdown adds where a first import's time goes, per 1,000 entries.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/newsreader_bench_import .venv/bin/python bench/import.py
"""

import argparse
import functools
import io
import os
import secrets
import statistics
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _harness import ensure_postgres_database, process_cpu_seconds  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/newsreader_bench_import"
SHARED_FEEDS = ROOT.parent / "shared" / "data" / "feeds" / "wellformed"


def generated_feed(entries: int = 1000) -> bytes:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    items = []
    for n in range(entries):
        body = " ".join(
            f"Sentence {k} of story {n} tells how the harbour, its ferries and the town council planned the week."
            for k in range(8)
        )
        items.append(
            f"<item><title>Generated story {n} about the harbour</title>"
            f"<link>https://bench.example.org/stories/{n}?utm_source=rss</link><guid>bench-{n}</guid>"
            f"<pubDate>{format_datetime(now - timedelta(minutes=n), usegmt=True)}</pubDate>"
            f"<category>Harbour</category><category>Ferries</category>"
            f"<description><![CDATA[<p>{body}</p><p><a href='/more/{n}'>More</a></p>]]></description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Bench</title>'
        f"<link>https://bench.example.org/</link>{''.join(items)}</channel></rss>"
    ).encode()


def conformance_feeds() -> list[bytes]:
    if not SHARED_FEEDS.exists():
        return []
    return [path.read_bytes() for path in sorted(SHARED_FEEDS.rglob("*")) if path.is_file()]


@dataclass
class Round:
    """feedparser alone, then a first import, on the same bytes: wall clock and CPU time."""

    floor_entries: int
    floor_seconds: float
    floor_cpu: float  # this process
    stored: int
    import_seconds: float
    import_cpu: float  # this process and its PostgreSQL backend

    @property
    def floor_rate(self) -> float:
        return self.floor_entries / self.floor_seconds

    @property
    def import_rate(self) -> float:
        return self.stored / self.import_seconds

    @property
    def ratio(self) -> float:
        return self.import_rate / self.floor_rate

    @property
    def cpu_ratio(self) -> float:
        """The ratio if CPU were all that limited both: other load on the machine moves it much less."""
        return (self.stored / self.import_cpu) / (self.floor_entries / self.floor_cpu)

    def line(self, name: str) -> str:
        return (
            f"{name:48} {self.stored:>8} {self.floor_rate:>13.0f} {self.import_rate:>10.0f} {self.ratio:>6.2f} "
            f"{self.cpu_ratio:>10.2f}"
        )


@contextmanager
def feedparser_as_released():
    """feedparser without our patches that only make it faster (stories.importing.feedparser_patches), so that
    the floor is feedparser's own speed; the patches that change what it returns stay."""
    from stories.importing import feedparser_patches

    patched = {
        (owner, name): getattr(owner, name)
        for owner, name in feedparser_patches.PATCHED_TARGETS
        if name in feedparser_patches.SPEED_PATCHES
    }
    for (owner, name), _ in patched.items():
        setattr(owner, name, feedparser_patches._originals[name])
    try:
        yield
    finally:
        for (owner, name), function in patched.items():
            setattr(owner, name, function)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database the benchmark owns: its stories, sources and runs are deleted "
        "(default: $DATABASE_URL, else %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the generated feed (default: 3)")
    parser.add_argument("--entries", type=int, default=1000, help="entries of the generated feed (default: 1000)")
    parser.add_argument("--no-conformance", action="store_true", help="skip the conformance feeds")
    parser.add_argument("--breakdown", action="store_true", help="also print where a first import's time goes")
    return parser.parse_args()


def main() -> None:
    options = arguments()
    ensure_postgres_database(options.database_url)
    # Production settings, as the worker runs: DEBUG off (no query log), a made-up SECRET_KEY if none is set.
    os.environ.update(
        {
            "DATABASE_URL": options.database_url,
            "DEBUG": "false",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
            "DJANGO_SETTINGS_MODULE": "newsreader.settings",
        }
    )
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    import feedparser
    from django.core.management import call_command
    from django.db import connection

    from stories.importing import dedupe, parse, service
    from stories.models import ImportRun, Source, Story

    call_command("migrate", verbosity=0)

    def empty_database() -> None:
        Story.objects.all().delete()
        ImportRun.objects.all().delete()
        Source.objects.all().delete()
        # Each round deletes what the last one wrote: without a vacuum, later rounds would scan its dead rows.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        processes = [os.getpid(), cursor.fetchone()[0]]

    def cpu_seconds() -> float:
        """CPU time so far of this process and of the PostgreSQL backend serving it."""
        return sum(process_cpu_seconds(processes).values())

    def first_import(feeds: list[bytes]) -> Round:
        """feedparser alone on `feeds`, then a first import of them into an empty database."""
        empty_database()
        with feedparser_as_released():
            started, cpu_started = time.perf_counter(), cpu_seconds()
            floor_entries = sum(len(feedparser.parse(io.BytesIO(content)).entries) for content in feeds)
            floor_seconds, floor_cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        sources = [
            Source.objects.create(name=f"Bench {n}", slug=f"bench-{n}", feed_url=f"https://bench.example.org/{n}.xml")
            for n in range(len(feeds))
        ]
        stored = 0
        started, cpu_started = time.perf_counter(), cpu_seconds()
        for source, content in zip(sources, feeds, strict=True):
            try:
                feed = parse.parse_feed(content=content, url=source.feed_url)
            except parse.FeedParseError:
                continue
            counts = service.store_entries(source=source, entries=feed.entries)
            service.group_near_duplicates(story_ids=counts.new)
            stored += len(counts.new)
        import_seconds, import_cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        return Round(floor_entries, floor_seconds, floor_cpu, stored, import_seconds, import_cpu)

    print(f"{'corpus':48} {'entries':>8} {'feedparser/s':>13} {'import/s':>10} {'ratio':>6} {'CPU ratio':>10}")
    generated = generated_feed(options.entries)
    rounds = []
    for _ in range(options.rounds):
        rounds.append(first_import([generated]))
        print(rounds[-1].line("  round"))
    name = f"generated feed, {options.entries:,} entries (median)"
    print(
        f"{name:48} {rounds[-1].stored:>8} {statistics.median(r.floor_rate for r in rounds):>13.0f} "
        f"{statistics.median(r.import_rate for r in rounds):>10.0f} {statistics.median(r.ratio for r in rounds):>6.2f} "
        f"{statistics.median(r.cpu_ratio for r in rounds):>10.2f}"
    )

    shared = [] if options.no_conformance else conformance_feeds()
    if shared:
        print(first_import(shared).line(f"well-formed conformance feeds ({len(shared)} files)"))
    elif not options.no_conformance:
        print("(../shared/data/feeds is absent: only the generated feed is measured)")

    digest = dedupe.content_hash(generated)
    started = time.perf_counter()
    hash_rounds = 200
    for _ in range(hash_rounds):
        unchanged = dedupe.content_hash(generated) == digest
    hash_ms = (time.perf_counter() - started) / hash_rounds * 1000
    with feedparser_as_released():
        started = time.perf_counter()
        feedparser.parse(io.BytesIO(generated))
        parse_ms = (time.perf_counter() - started) * 1000
    print(
        f"unchanged {options.entries:,}-entry feed: content hash {hash_ms:.2f} ms (unchanged={unchanged}) "
        f"instead of a {parse_ms:.0f} ms parse"
    )

    if options.breakdown:
        print_breakdown(generated, options.entries, first_import)


def print_breakdown(generated: bytes, entries: int, first_import) -> None:
    """Time the import's steps by wrapping the functions that do them; a step's time excludes the steps it
    calls. feedparser.parse counts only inside parse_feed (the floor calls it too)."""
    from stories import models
    from stories.importing import dedupe, parse, rows, service

    spent: dict[str, float] = defaultdict(float)
    running: list[str] = []

    def timed(owner: object, name: str, step: str, *, nested_only: bool = False) -> None:
        function = getattr(owner, name)

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if nested_only and not running:
                return function(*args, **kwargs)
            running.append(step)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                running.pop()
                spent[step] += elapsed
                if running:
                    spent[running[-1]] -= elapsed

        setattr(owner, name, wrapper)

    timed(parse, "parse_feed", "our parsing around feedparser")
    timed(parse.feedparser, "parse", "feedparser.parse (no sanitising, base URL given)", nested_only=True)
    timed(service, "store_entries", "other storing (keys, slugs, Story objects, commit)")
    timed(models, "sanitize_html", "sanitising (bleach's form recognised or bleach, then nh3)")
    timed(models, "html_to_text", "plain text of the body")
    timed(dedupe, "story_signatures", "MinHash signatures")
    timed(rows.StoryInserts, "add", "story INSERTs sent (search vectors included)")
    timed(rows.StoryInserts, "__exit__", "waiting for the last INSERTs")
    timed(service, "_tag_hints", "tags (their rows; the links go in with the stories)")
    timed(service, "group_near_duplicates", "near-duplicate grouping")
    first_import([generated])  # warm
    spent.clear()
    rounds = 3
    total = sum(first_import([generated]).import_seconds for _ in range(rounds))
    per_thousand = 1000 / entries / rounds * 1000
    print(f"\nwhere a first import's time goes, per 1,000 entries (mean of {rounds} rounds, wall clock):")
    for step, seconds in sorted(spent.items(), key=lambda pair: -pair[1]):
        print(f"  {step:58} {seconds * per_thousand:7.1f} ms")
    print(f"  {'the whole import':58} {total * per_thousand:7.1f} ms")


if __name__ == "__main__":
    main()
