"""Requests per second and latency of the reader's pages, each against a bare Django page of its size.

Starts the app under gunicorn with production settings on PostgreSQL and Redis, seeds a realistic
set of stories, then for two server configurations (visitor page cache off, then on) measures the
story list `/`, one story page, and the ceiling: a pre-rendered page of the same size served by a
bare view through the same middleware of the same server. Prints each page's share of its ceiling
against the targets. Run from the project root (PostgreSQL and Redis must be running):

    .venv/bin/python bench/pages.py --database-url postgres://postgres@127.0.0.1:5432/newsreader_bench
"""

import argparse
import io
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import _harness

# Share of the ceiling's requests per second a page must reach (issue 2).
TARGET_UNCACHED, TARGET_CACHED = 0.3, 0.9
CACHED_PAGE_SECONDS = 300
# Plain words the generated stories are made of (the text only has to be the right length and shape).
_VOCABULARY = """
city council harbour port river bridge tram bus rail station ferry airport road budget tax plan vote law
minister party election court judge police school teacher student university research study data report
hospital doctor nurse patient vaccine clinic health water power grid solar wind battery energy price market
bank loan rate inflation wages jobs workers union strike factory chip phone software network cloud model
startup investor company profit loss sales export import trade farm crop harvest rain storm flood drought
heat forest fire coast island mountain valley village town region country border treaty summit talks
leader mayor president team coach player match season league final goal record crowd stadium festival
film music album book museum gallery artist writer show theatre new old first last early late
small large local national global public private open closed higher lower rising falling quiet busy
after before during while since under over across between near
"""
_TOPICS = "policy plan reform project review survey crisis deal debate report trial launch fund scheme"
WORDS = _VOCABULARY.split()
SECOND_WORDS = _TOPICS.split()


@dataclass(frozen=True)
class Measurement:
    """A page and its ceiling, measured in alternating rounds so both see the same background load."""

    configuration: str
    page: str
    path: str
    page_result: _harness.LoadResult
    ceiling_result: _harness.LoadResult
    round_ratios: tuple[float, ...]
    target: float

    @property
    def cpu_ratio(self) -> float:
        """The ratio if the server's CPU time per request were all that counted: less sensitive to other load."""
        page = self.page_result.server_cpu_seconds + self.page_result.database_cpu_seconds
        ceiling = self.ceiling_result.server_cpu_seconds + self.ceiling_result.database_cpu_seconds
        if not page or not self.ceiling_result.requests:
            return 0.0
        return (ceiling / self.ceiling_result.requests) / (page / self.page_result.requests)

    @property
    def ratio(self) -> float:
        """The median of the rounds' ratios: a burst of load from elsewhere spoils one round, not the figure."""
        return statistics.median(self.round_ratios)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/newsreader_bench"),
        help="a PostgreSQL database the benchmark owns: dropped and recreated unless --reuse-database",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
        help="a Redis database the benchmark owns: it is emptied before each server configuration",
    )
    parser.add_argument(
        "--page-cache", choices=["off", "on", "both"], default="both", help="server configurations to run"
    )
    parser.add_argument("--stories", type=int, default=500, help="stories to seed (default 500)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"], help="default sync")
    parser.add_argument("--threads", type=int, default=1, help="threads per gthread worker (default 1)")
    parser.add_argument("--concurrency", type=int, default=4, help="connections kept busy (default 4)")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per round (default 4)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before the first round (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario, page and ceiling alternating")
    parser.add_argument(
        "--reuse-database",
        action="store_true",
        help="keep the database and stories of the last run instead of recreating, migrating and seeding",
    )
    return parser.parse_args()


def setup_django(environment: dict[str, str], static_root: Path) -> None:
    """Configure Django in this process with the benchmark server's settings, to migrate and seed."""
    os.environ.update(environment)
    sys.path.insert(0, str(_harness.ROOT))
    import django
    from django.conf import settings

    settings.STATIC_ROOT = static_root
    django.setup()


def sentence(rng: random.Random, low: int, high: int) -> str:
    words = rng.choices(WORDS, k=rng.randint(low, high))
    return " ".join(words).capitalize()


def story_body(rng: random.Random) -> str:
    """Five to ten paragraphs with the occasional heading, link and list, as imported bodies have."""
    parts = []
    for index in range(rng.randint(5, 10)):
        if index and index % 3 == 0:
            parts.append(f"<h2>{sentence(rng, 2, 5)}</h2>")
        text = ". ".join(sentence(rng, 8, 18) for _ in range(rng.randint(3, 6)))
        if rng.random() < 0.3:
            text += f'. See <a href="https://example.org/{rng.choice(WORDS)}">{sentence(rng, 2, 4).lower()}</a>'
        parts.append(f"<p>{text}.</p>")
        if rng.random() < 0.1:
            items = "".join(f"<li>{sentence(rng, 4, 9)}</li>" for _ in range(rng.randint(3, 5)))
            parts.append(f"<ul>{items}</ul>")
    return "\n".join(parts)


def seed_stories(*, count: int, seed: int = 20240501) -> None:
    """The demo content plus generated stories, `count` in all, the same on every run."""
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone
    from django.utils.text import slugify

    from stories.models import Region, Section, Source, Story, Tag

    rng = random.Random(seed)
    with transaction.atomic():
        call_command("load_demo", "--no-moderator", stdout=io.StringIO())
        for number in range(9):
            Source.objects.update_or_create(
                slug=f"bench-source-{number}",
                defaults={
                    "name": f"{sentence(rng, 1, 2)} {rng.choice(['Post', 'Times', 'Courier', 'Herald'])}",
                    "homepage_url": f"https://bench-source-{number}.example.org/",
                    "feed_url": f"https://bench-source-{number}.example.org/feed.xml",
                },
            )
        sources, sections = list(Source.objects.all()), list(Section.objects.all())
        regions = list(Region.objects.select_related("parent"))
        names = {f"{rng.choice(WORDS).capitalize()} {rng.choice(SECOND_WORDS)}" for _ in range(400)}
        tags = [Tag(name=name, slug=slugify(name)) for name in sorted(names)[:150]]
        Tag.objects.bulk_create(tags, ignore_conflicts=True)
        tags = list(Tag.objects.all())
        images = list(Story.objects.values_list("image_url", "image_width", "image_height"))
        now = timezone.now()
        for number in range(count - Story.objects.count()):
            image_url, width, height = rng.choice(images)
            with_image = rng.random() < 0.85
            story = Story(
                title=sentence(rng, 7, 14),
                dek=". ".join(sentence(rng, 10, 20) for _ in range(2)) + ".",
                body_html=story_body(rng),
                source=rng.choice(sources),
                section=rng.choice(sections) if rng.random() < 0.95 else None,
                region=rng.choice(regions) if rng.random() < 0.8 else None,
                original_url=f"https://news.example.org/{number}/{rng.choice(WORDS)}",
                author=sentence(rng, 2, 2).title() if rng.random() < 0.6 else "",
                published_at=now - timedelta(minutes=rng.randint(30, 30 * 24 * 60)),
                image_url=image_url if with_image else "",
                image_width=width if with_image else None,
                image_height=height if with_image else None,
                image_alt=sentence(rng, 6, 12) if with_image else "",
                image_credit=sentence(rng, 2, 2).title() if with_image else "",
                image_credit_url=f"https://photos.example.org/@{number}" if with_image else "",
                image_provider="Pexels" if with_image else "",
                image_provider_url=f"https://photos.example.org/photo/{number}" if with_image else "",
                view_count=rng.randint(0, 5000),
                comment_count=rng.choice([0, 0, 0, 1, 2, 3, 5, 8, 13, 40]),
                ai_generated=rng.random() < 0.3,
                ai_labelled=rng.random() < 0.9,
                labeller="bench",
                status=Story.Status.PUBLISHED if rng.random() < 0.96 else Story.Status.HIDDEN,
            )
            story.save()
            story.tags.set(rng.sample(tags, rng.randint(2, 6)))


def measured_story_path() -> str:
    """A fully dressed story near the top of the list: image, region in a continent, section, tags."""
    from django.db.models import Count

    from stories.models import Story

    story = (
        Story.objects.published()
        .exclude(image_url="")
        .filter(region__parent__isnull=False, section__isnull=False)
        .annotate(tag_total=Count("tags"))
        .filter(tag_total__gte=3)
        .first()
    )
    if story is None:
        raise SystemExit("No published story with an image, region, section and tags: seed the database.")
    return story.get_absolute_url()


def prepare(args: argparse.Namespace) -> str:
    """A fresh, migrated and seeded database and collected static files; returns the story page to measure."""
    from django.core.management import call_command
    from django.db import connections

    _harness.flush_redis_database(args.redis_url)
    if not args.reuse_database:
        _harness.recreate_postgres_database(args.database_url)
        call_command("migrate", "--noinput", verbosity=0)
        print(f"Seeding {args.stories} stories…", flush=True)
        seed_stories(count=args.stories)
        with connections["default"].cursor() as cursor:
            # Planner statistics, as a live database has them; without them the planner guesses one row.
            cursor.execute("ANALYZE")
    call_command("collectstatic", "--noinput", verbosity=0)
    story_path = measured_story_path()
    connections.close_all()
    return story_path


def check_page(server: _harness.Server, path: str, *, cached: bool) -> int:
    """Fetch the page twice, make sure it is whole and the page cache behaves as configured; its size."""
    for _ in range(2):
        status, headers, body = _harness.http_get(server.port, path)
        if status != 200:
            raise SystemExit(f"{path} answered {status}. The server's log ends with:\n{server.log_tail()}")
    hit = headers.get("x-page-cache") == "hit"
    if hit != cached:
        raise SystemExit(f"{path}: page cache hit {hit} on the second request, expected {cached}")
    return len(body)


def measure_configuration(
    args: argparse.Namespace, server: _harness.Server, *, label: str, cached: bool, pages: dict[str, str]
) -> list[Measurement]:
    measurements = []
    for page, path in pages.items():
        size = check_page(server, path, cached=cached)
        if page == "list" and (cards := _harness.http_get(server.port, path)[2].count(b'<article class="card">')) < 10:
            raise SystemExit(f"The list page shows {cards} stories: the seed did not take.")
        ceiling_path = f"/__bench__/ceiling/{size}/"
        status, _, body = _harness.http_get(server.port, ceiling_path)
        if status != 200 or len(body) != size:
            raise SystemExit(f"{ceiling_path} answered {status} with {len(body)} bytes, expected {size}")
        comparison = _harness.compare_with_ceiling(
            port=server.port,
            path=path,
            ceiling_path=ceiling_path,
            rounds=args.rounds,
            concurrency=args.concurrency,
            seconds=args.seconds,
            warmup_seconds=args.warmup,
            server_pids=server.worker_pids,
            database_pids=lambda: _harness.postgres_backend_pids(args.database_url),
            label=f"{label:<15} {page:<6}",
        )
        measurements.append(
            Measurement(
                configuration=label,
                page=page,
                path=path,
                page_result=comparison.page,
                ceiling_result=comparison.ceiling,
                round_ratios=comparison.round_ratios,
                target=TARGET_CACHED if cached else TARGET_UNCACHED,
            )
        )
    return measurements


def print_report(args: argparse.Namespace, measurements: list[Measurement], load: tuple[float, ...]) -> None:
    threads = f" x {args.threads} threads" if args.worker_class == "gthread" else ""
    print()
    print(
        f"gunicorn {args.worker_class}, {args.workers} workers{threads}; {args.concurrency} connections; "
        f"{args.rounds} rounds of {args.seconds:g} s per scenario, page and ceiling alternating; "
        f"{os.cpu_count()} CPUs, load average before/after {load[0]:.2f}/{load[1]:.2f}"
    )
    header = (
        f"{'configuration':<15} {'page':<6} {'bytes':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'ceiling':>8} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6} {'target':>10}  {'rounds':<15} {'CPU ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    for m in measurements:
        page, ceiling = m.page_result, m.ceiling_result
        verdict = f"≥ {m.target:.1f} {'met' if m.ratio >= m.target else 'UNDER'}"
        rounds = "/".join(f"{ratio:.2f}" for ratio in m.round_ratios)
        print(
            f"{m.configuration:<15} {m.page:<6} {page.response_bytes:>6} {page.per_second:>7.1f}"
            f" {page.p50_ms:>7.2f} {page.p99_ms:>7.2f} {ceiling.per_second:>8.1f} {ceiling.p50_ms:>7.2f}"
            f" {ceiling.p99_ms:>7.2f} {m.ratio:>6.2f} {verdict:>10}  {rounds:<15} {m.cpu_ratio:>9.2f}"
        )
    print(
        "req/s and latencies cover all rounds; ratio is the median of the rounds' page/ceiling ratios.\n"
        "CPU ratio: the ceiling's CPU time per request over the page's (gunicorn workers plus the PostgreSQL\n"
        "backends serving them; Redis, the kernel and the client not counted): what the ratio would be if\n"
        "the server's own work were all that limited it; other load on the machine moves it much less."
    )
    errors = sum(m.page_result.errors + m.ceiling_result.errors for m in measurements)
    if errors:
        print(f"{errors} requests failed; see the figures above.")


def main() -> int:
    args = parse_args()
    # A plain `kill` unwinds like Ctrl-C does, so the servers are stopped and the temporary files removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    work_dir = Path(tempfile.mkdtemp(prefix="newsreader-bench-"))
    load_before = os.getloadavg()[0]
    try:

        def environment(page_cache_seconds: int) -> dict[str, str]:
            return _harness.production_environment(
                database_url=args.database_url,
                redis_url=args.redis_url,
                work_dir=work_dir,
                page_cache_seconds=page_cache_seconds,
            )

        setup_django(environment(0), work_dir / "static")
        pages = {"list": "/", "story": prepare(args)}
        measurements = []
        configurations = [("off", "page cache off", 0), ("on", "page cache on", CACHED_PAGE_SECONDS)]
        for name, label, seconds in configurations:
            if args.page_cache not in (name, "both"):
                continue
            _harness.flush_redis_database(args.redis_url)
            server = _harness.Server(
                app="bench.wsgi:application",
                environment=environment(seconds),
                log_path=work_dir / "gunicorn.log",
                workers=args.workers,
                worker_class=args.worker_class,
                threads=args.threads,
            )
            with server:
                measurements += measure_configuration(args, server, label=label, cached=bool(seconds), pages=pages)
            if "Traceback" in server.log_tail(200):
                print(f"The server logged errors:\n{server.log_tail()}")
        print_report(args, measurements, (load_before, os.getloadavg()[0]))
        return 1 if any(m.page_result.errors or m.ceiling_result.errors for m in measurements) else 0
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
