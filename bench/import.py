"""First-import throughput next to feedparser alone on the same bytes.

For each corpus (the well-formed conformance feeds when ../shared/data is present, and a generated
feed of 1,000 entries) it times `feedparser.parse` on the bytes — the floor cost — then a first
import of the same bytes: parsing, sanitising, de-duplication keys, similarity signatures and
storage in PostgreSQL. It prints entries per second for both and their ratio, and then the cost of
an unchanged feed (a content hash, never a parse).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/newsreader_bench .venv/bin/python bench/import.py
"""

import io
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _harness import ensure_postgres_database  # noqa: E402

DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/newsreader_bench_import")
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


def main() -> None:
    ensure_postgres_database(DATABASE_URL)
    os.environ.update({"DATABASE_URL": DATABASE_URL, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "newsreader.settings"})
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    import feedparser
    from django.core.management import call_command

    from stories.importing import dedupe, parse, service
    from stories.models import ImportRun, Source, Story

    call_command("migrate", verbosity=0)
    corpora = [("generated feed, 1,000 entries", [generated_feed()])]
    shared = conformance_feeds()
    if shared:
        corpora.append((f"well-formed conformance feeds ({len(shared)} files)", shared))
    else:
        print("(../shared/data/feeds is absent: only the generated feed is measured)")

    print(f"{'corpus':48} {'entries':>8} {'feedparser/s':>13} {'import/s':>10} {'ratio':>6}")
    for name, feeds in corpora:
        Story.objects.all().delete()
        ImportRun.objects.all().delete()
        Source.objects.all().delete()
        started = time.perf_counter()
        floor_entries = sum(len(feedparser.parse(io.BytesIO(content)).entries) for content in feeds)
        floor_seconds = time.perf_counter() - started

        sources = [
            Source.objects.create(name=f"Bench {n}", slug=f"bench-{n}", feed_url=f"https://bench.example.org/{n}.xml")
            for n in range(len(feeds))
        ]
        stored = 0
        started = time.perf_counter()
        for source, content in zip(sources, feeds, strict=True):
            try:
                feed = parse.parse_feed(content=content, url=source.feed_url)
            except parse.FeedParseError:
                continue
            counts = service.store_entries(source=source, entries=feed.entries)
            stored += len(counts.new)
        import_seconds = time.perf_counter() - started
        floor_rate = floor_entries / floor_seconds
        import_rate = stored / import_seconds if import_seconds else 0.0
        print(f"{name:48} {stored:>8} {floor_rate:>13.0f} {import_rate:>10.0f} {import_rate / floor_rate:>6.2f}")

    content = generated_feed()
    digest = dedupe.content_hash(content)
    started = time.perf_counter()
    rounds = 200
    for _ in range(rounds):
        unchanged = dedupe.content_hash(content) == digest
    hash_ms = (time.perf_counter() - started) / rounds * 1000
    started = time.perf_counter()
    feedparser.parse(io.BytesIO(content))
    parse_ms = (time.perf_counter() - started) * 1000
    print(
        f"unchanged 1,000-entry feed: content hash {hash_ms:.2f} ms (unchanged={unchanged}) "
        f"instead of a {parse_ms:.0f} ms parse"
    )


if __name__ == "__main__":
    main()
