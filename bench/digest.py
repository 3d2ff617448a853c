"""How fast the hourly digest run builds and renders digests: 10,000 readers due at once.

The script owns its PostgreSQL database (dropped and recreated; its name must contain "bench"). It
migrates and writes 2,000 stories published over the last 20 hours (8 sections, 36 regions, 40 sources,
300 tags, two to five tags each, made-up comment and view counts) and 10,000 readers with a verified
address, a daily digest due now, and 3 to 10 follows each among sections, tags, regions and sources.
Then, in a fresh process pinned to one CPU (one worker), it runs `follows.digests.send_due_digests`:
every batch claimed, built, recorded and each digest rendered into a complete MIME message, which a
mail backend serialises and drops. It prints readers per second, the digests mailed, and the run's peak
memory (the process's peak resident set, which holds only Django and the run). Target: 10,000 digests in under two
minutes on one worker.

    .venv/bin/python bench/digest.py
    .venv/bin/python bench/digest.py --database-url postgres://postgres@127.0.0.1:5432/newsreader_bench_digest
"""

import argparse
import os
import random
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _harness import recreate_postgres_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/newsreader_bench_digest"
TARGET_SECONDS = 120.0


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DEBUG", "true")
    os.environ.pop("REDIS_URL", None)
    os.environ["EMAIL_URL"] = "dummymail://"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsreader.settings")
    import django

    django.setup()


class SerialisingBackend:
    """A mail server that takes each message whole (as bytes, as SMTP would) and keeps nothing."""

    sent = 0
    sent_bytes = 0

    def __init__(self, **kwargs) -> None:
        pass

    def send_messages(self, messages) -> int:
        for message in messages:
            SerialisingBackend.sent_bytes += len(message.message().as_bytes())
            SerialisingBackend.sent += 1
        return len(messages)

    def close(self) -> None:
        pass


def seed(*, readers: int, stories: int, seed_value: int = 1) -> None:
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from follows.models import DigestSettings, Follow
    from stories.models import Region, Section, Source, Story, Tag

    call_command("migrate", verbosity=0)
    rng = random.Random(seed_value)
    now = timezone.now()
    sections = Section.objects.bulk_create(
        [Section(name=f"Section {n}", slug=f"section-{n}", position=n) for n in range(8)]
    )
    continents = Region.objects.bulk_create([Region(name=f"Continent {n}", slug=f"continent-{n}") for n in range(6)])
    countries = Region.objects.bulk_create(
        [Region(name=f"Country {n}", slug=f"country-{n}", parent=continents[n % 6]) for n in range(30)]
    )
    sources = Source.objects.bulk_create(
        [
            Source(name=f"Source {n}", slug=f"source-{n}", feed_url=f"https://source-{n}.example.org/feed")
            for n in range(40)
        ]
    )
    tags = Tag.objects.bulk_create([Tag(name=f"Tag {n}", slug=f"tag-{n}") for n in range(300)])
    made = Story.objects.bulk_create(
        [
            Story(
                source=rng.choice(sources),
                section=rng.choice(sections),
                region=rng.choice(countries) if rng.random() < 0.7 else None,
                title=f"Story {n} about the harbour, the council and the weather",
                slug=f"story-{n}",
                dek="One or two sentences under the headline, as a labeller writes them.",
                body_html="<p>The body.</p>",
                body_text="The body.",
                status=Story.Status.PUBLISHED,
                published_at=now - timedelta(minutes=rng.randint(1, 20 * 60)),
                comment_count=rng.choice([0, 0, 0, 1, 2, 5, 12]),
                view_count=rng.randint(0, 400),
            )
            for n in range(stories)
        ],
        batch_size=1000,
    )
    Story.tags.through.objects.bulk_create(
        [
            Story.tags.through(story_id=story.pk, tag_id=tag.pk)
            for story in made
            for tag in rng.sample(tags, rng.randint(2, 5))
        ],
        batch_size=5000,
    )
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"reader{n}", email=f"reader{n}@example.org") for n in range(readers)],
        batch_size=2000,
    )
    EmailAddress.objects.bulk_create(
        [EmailAddress(user=user, email=user.email, verified=True, primary=True) for user in users], batch_size=2000
    )
    kinds = [("section", sections), ("tag", tags), ("region", continents + countries), ("source", sources)]
    follows = []
    for user in users:
        chosen, wanted = set(), rng.randint(3, 10)
        while len(chosen) < wanted:
            kind, things = rng.choice(kinds)
            chosen.add((kind, rng.choice(things)))
        follows += [Follow(reader=user, **{kind: thing}) for kind, thing in chosen]
    Follow.objects.bulk_create(follows, batch_size=5000)
    DigestSettings.objects.bulk_create(
        [
            DigestSettings(reader=user, frequency="daily", hour=7, next_due_at=now - timedelta(minutes=1))
            for user in users
        ],
        batch_size=2000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"Wrote {stories} stories, {readers} readers with {len(follows)} follows ({len(follows) / readers:.1f} each)")


def make_due_again() -> None:
    """Forget the last run's digests, so every reader is due with the same stories new."""
    from django.utils import timezone

    from follows.models import DigestedStory, DigestSettings

    DigestedStory.objects.all().delete()
    DigestSettings.objects.update(next_due_at=timezone.now() - timedelta(minutes=1), last_sent_at=None)


def resident_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process from /proc, in MiB. Unlike getrusage's ru_maxrss, the peak
    starts afresh in a new program rather than carrying over the seeding parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(cpu: int | None) -> None:
    """The digest run itself, in this fresh process."""
    os.sched_setaffinity(0, {cpu if cpu is not None else min(os.sched_getaffinity(0))})
    from django.conf import settings
    from django.db import connection

    from follows import digests

    settings.EMAIL_BACKEND = f"{__name__}.SerialisingBackend"
    connection.ensure_connection()
    rss_before = resident_mib("VmRSS")
    started = time.perf_counter()
    run = digests.send_due_digests()
    seconds = time.perf_counter() - started
    peak = resident_mib("VmHWM")
    print(
        f"Digest run: {run.readers} readers due, {run.sent} digests mailed, {run.nothing_new} with nothing new, "
        f"{run.failed} failed, in {seconds:.1f} s on one CPU: {run.readers / max(seconds, 1e-9):.0f} readers/s"
    )
    print(
        f"Messages: {SerialisingBackend.sent}, "
        f"{SerialisingBackend.sent_bytes / max(SerialisingBackend.sent, 1) / 1024:.1f} KiB "
        f"each on average; batches of {digests.DIGEST_BATCH_READERS} readers"
    )
    print(
        f"Peak memory: {peak:.0f} MiB resident "
        f"({peak - rss_before:.0f} MiB above the {rss_before:.0f} MiB before the run)"
    )
    verdict = "met" if seconds * 10_000 / max(run.readers, 1) < TARGET_SECONDS else "NOT met"
    print(f"Target (10,000 digests in under {TARGET_SECONDS:.0f} s on one worker): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DIGEST_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--stories", type=int, default=2_000)
    parser.add_argument(
        "--reuse-database", action="store_true", help="Keep the last run's data; its digests are made due again."
    )
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin the run to (default: the first allowed).")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.measure:
        setup_django(options.database_url)
        measure(options.cpu)
        return
    if options.reuse_database:
        setup_django(options.database_url)
        make_due_again()
    else:
        recreate_postgres_database(options.database_url)
        setup_django(options.database_url)
        started = time.perf_counter()
        seed(readers=options.readers, stories=options.stories)
        print(f"Seeded in {time.perf_counter() - started:.1f} s")
    from django.db import connections

    connections.close_all()
    command = [sys.executable, __file__, "--measure", "--database-url", options.database_url]
    if options.cpu is not None:
        command += ["--cpu", str(options.cpu)]
    sys.exit(subprocess.run(command, check=False).returncode)


if __name__ == "__main__":
    main()
