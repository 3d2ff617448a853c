"""Requests per second and latency of the reader's pages, each against a bare Django page of its size.

Starts the app under gunicorn with production settings on PostgreSQL and Redis, seeds a realistic
set of stories with their comments (500 by default, 100,000 with `--stories 100000`), then for three
server configurations (the page cache off, then on for visitors, then on for a signed-in reader, who
gets the same cached pages with their own parts filled in) measures the story list `/`, one story
page, and the ceiling: a pre-rendered page of the same size served by a bare view through the same
middleware of the same server. Prints each page's share of its ceiling
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
from datetime import datetime, timedelta
from pathlib import Path

import _harness

# Share of the ceiling's requests per second a page must reach.
TARGET_UNCACHED, TARGET_CACHED, TARGET_SIGNED_IN = 0.3, 0.9, 0.6
BENCH_READER = "bench_reader"
CACHED_PAGE_SECONDS = 300
# Rows per bulk INSERT while seeding.
BATCH = 2_000
# Visible comments on a generated story, drawn from this list: a few, often none.
COMMENTS_PER_STORY = (0, 0, 0, 1, 1, 2, 3, 5, 8)
# One story in 5,000 (at least two) holds a thread this long.
BIG_THREAD = 500
# The measured story, on top of the list, and its thread: twenty comments in eight threads.
MEASURED_TITLE = "Harbour city opens its first battery tram line"
MEASURED_THREAD = 20
BODY_POOL, COMMENT_TEXTS, READERS = 400, 300, 300
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
        "--page-cache",
        choices=["off", "on", "both", "signed-in", "all"],
        default="all",
        help="server configurations to run: cache off, on for visitors, both of these, on for a signed-in "
        "reader, or all three (default)",
    )
    parser.add_argument(
        "--stories", type=int, default=500, help="stories to seed (default 500; 100000 for a large site)"
    )
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


def comment_text(rng: random.Random) -> str:
    return ". ".join(sentence(rng, 6, 16) for _ in range(rng.randint(1, 3))) + "."


class CommentWriter:
    """Visible comments written with bulk INSERTs, their ids chosen here so that replies name their parents
    before these are written."""

    def __init__(self, rng: random.Random, *, authors: list[int]) -> None:
        from comments.markup import fingerprint, render_comment
        from comments.models import Comment

        self.rng, self.authors = rng, authors
        self.pending: list[Comment] = []
        self.written = 0
        self.next_id = (Comment.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        # Each text rendered and sanitised once, as the comment service does when a comment is posted.
        texts = [comment_text(rng) for _ in range(COMMENT_TEXTS)]
        self.texts = [(text, render_comment(text), fingerprint(text)) for text in texts]

    def thread(self, *, story_id: int, size: int, start: datetime, top_level: int | None = None) -> None:
        """`size` comments on one story, three minutes apart: the first `top_level` (by default about half)
        start threads, each of the others replies to a recent comment, up to four deep."""
        from comments.models import Comment

        top_level = top_level if top_level is not None else (size + 1) // 2
        thread: list[Comment] = []
        for number in range(size):
            parent = None
            if number >= top_level:
                parent = self.rng.choice([c for c in thread[-60:] if c.depth < 4] or thread[:top_level])
            source, html, fingerprint = self.rng.choice(self.texts)
            thread.append(
                Comment(
                    pk=self.next_id,
                    story_id=story_id,
                    author_id=self.rng.choice(self.authors),
                    parent_id=parent.pk if parent else None,
                    root_id=(parent.root_id or parent.pk) if parent else None,
                    depth=parent.depth + 1 if parent else 0,
                    body_source=source,
                    body_html=html,
                    body_hash=fingerprint,
                    created_at=start + timedelta(minutes=3 * number),
                )
            )
            self.next_id += 1
        roots = {comment.pk: comment for comment in thread if comment.root_id is None}
        for comment in thread:
            if comment.root_id is not None:
                roots[comment.root_id].thread_reply_count += 1
        self.pending += thread
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        from comments.models import Comment

        Comment.objects.bulk_create(self.pending, batch_size=BATCH)
        self.written += len(self.pending)
        self.pending = []

    def close(self) -> None:
        """Write what is left, and move the id sequence past the ids chosen here."""
        from django.core.management.color import no_style
        from django.db import connection

        from comments.models import Comment

        self.flush()
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(no_style(), [Comment]):
                cursor.execute(statement)


def seed_stories(*, count: int, seed: int = 20240501) -> None:
    """The demo content plus generated stories, `count` in all, with their tags and comments, the same on
    every run.

    On top of the list is the story the benchmark measures, with the same thread whatever the count.
    The others are written with bulk INSERTs of BATCH rows, so 100,000 stories take minutes; their
    bodies come from a pool, each body sanitised once as an imported one is."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone
    from django.utils.text import slugify

    from stories.models import Region, Section, Source, Story, Tag, reading_minutes

    rng = random.Random(seed)
    now = timezone.now()
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
        Tag.objects.bulk_create(
            [Tag(name=name, slug=slugify(name)) for name in sorted(names)[:150]], ignore_conflicts=True
        )
        tag_ids = list(Tag.objects.values_list("pk", flat=True))
        images = list(Story.objects.values_list("image_url", "image_width", "image_height"))
        readers = get_user_model().objects.bulk_create(
            get_user_model()(
                username=f"bench-reader-{n}",
                email=f"bench-reader-{n}@example.org",
                date_joined=now - timedelta(days=400),
            )
            for n in range(READERS)
        )
        comments = CommentWriter(rng, authors=[reader.pk for reader in readers])
        bodies = []
        for _ in range(min(count, BODY_POOL)):
            pooled = Story(body_html=story_body(rng))
            pooled.clean_text()
            bodies.append((pooled.body_html, pooled.body_text))

        measured = Story(
            title=MEASURED_TITLE,
            dek="The city replaces the diesel buses of two hill routes. The first trams run on Monday.",
            body_html=bodies[0][0],
            source=sources[0],
            section=sections[0],
            region=next(region for region in regions if region.parent_id),
            original_url="https://news.example.org/battery-trams",
            author="Ana Lima",
            published_at=now - timedelta(minutes=10),
            image_url=images[0][0],
            image_width=images[0][1],
            image_height=images[0][2],
            image_alt="A tram climbing a hill street at dusk.",
            image_credit="Ana Lima",
            image_credit_url="https://photos.example.org/@ana",
            image_provider="Pexels",
            image_provider_url="https://photos.example.org/photo/1",
            view_count=1234,
            comment_count=MEASURED_THREAD,
            ai_generated=True,
            ai_labelled=True,
            labeller="bench",
            status=Story.Status.PUBLISHED,
        )
        measured.save()
        measured.tags.set(tag_ids[:4])
        comments.thread(story_id=measured.pk, size=MEASURED_THREAD, start=now - timedelta(minutes=9), top_level=8)

        big_threads = max(2, count // 5000)
        story_ids: list[int] = []
        while (remaining := count - Story.objects.count()) > 0:
            batch = []
            for _ in range(min(BATCH, remaining)):
                number = len(story_ids) + len(batch)
                image_url, width, height = rng.choice(images)
                with_image = rng.random() < 0.85
                body_html, body_text = rng.choice(bodies)
                title, dek = sentence(rng, 7, 14), ". ".join(sentence(rng, 10, 20) for _ in range(2)) + "."
                batch.append(
                    Story(
                        title=title,
                        slug=f"{slugify(title)[:200]}-{number}",
                        dek=dek,
                        body_html=body_html,
                        body_text=body_text,
                        reading_minutes=reading_minutes(f"{dek} {body_text}"),
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
                        comment_count=BIG_THREAD if number < big_threads else rng.choice(COMMENTS_PER_STORY),
                        ai_generated=rng.random() < 0.3,
                        ai_labelled=rng.random() < 0.9,
                        labeller="bench",
                        status=Story.Status.PUBLISHED if rng.random() < 0.96 else Story.Status.HIDDEN,
                        # Another source's story on the same news: listed on that story's page, not as a card.
                        duplicate_of_id=rng.choice(story_ids) if story_ids and rng.random() < 0.02 else None,
                    )
                )
            Story.objects.bulk_create(batch)
            Story.tags.through.objects.bulk_create(
                Story.tags.through(story_id=story.pk, tag_id=tag_id)
                for story in batch
                for tag_id in rng.sample(tag_ids, rng.randint(2, 6))
            )
            for story in batch:
                comments.thread(story_id=story.pk, size=story.comment_count, start=story.published_at)
                story_ids.append(story.pk)
        comments.close()
        Story.objects.filter(search_vector__isnull=True).refresh_search_vectors()
    print(f"{Story.objects.count():,} stories and {comments.written:,} comments in the database.", flush=True)


def measured_story_path() -> str:
    """The story the seed put on top of the list: image, region in a continent, section, tags, a thread."""
    from stories.models import Story

    story = Story.objects.filter(title=MEASURED_TITLE).first()
    if story is None:
        raise SystemExit("The database holds no story to measure: run without --reuse-database to seed it.")
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


def signed_in_cookie() -> str:
    """A session cookie of a verified reader, as the browser of a reader who logged in would send it."""
    from allauth.account.models import EmailAddress
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.cached_db import SessionStore
    from django.db import connections

    user, _ = get_user_model().objects.get_or_create(
        username=BENCH_READER, defaults={"email": "bench.reader@example.org"}
    )
    EmailAddress.objects.get_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    connections.close_all()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def check_page(server: _harness.Server, path: str, *, cached: bool, cookie: str = "") -> int:
    """Fetch the page twice, make sure it is whole and the page cache behaves as configured; its size."""
    for _ in range(2):
        status, headers, body = _harness.http_get(server.port, path, cookie=cookie)
        if status != 200:
            raise SystemExit(f"{path} answered {status}. The server's log ends with:\n{server.log_tail()}")
    hit = headers.get("x-page-cache") == "hit"
    if hit != cached:
        raise SystemExit(f"{path}: page cache hit {hit} on the second request, expected {cached}")
    if cookie and f"<bdi>{BENCH_READER}</bdi>".encode() not in body:
        raise SystemExit(f"{path}: the page does not show the signed-in reader's name")
    return len(body)


def measure_configuration(
    args: argparse.Namespace,
    server: _harness.Server,
    *,
    label: str,
    cached: bool,
    pages: dict[str, str],
    cookie: str = "",
) -> list[Measurement]:
    measurements = []
    for page, path in pages.items():
        size = check_page(server, path, cached=cached, cookie=cookie)
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
            cookie=cookie,
        )
        measurements.append(
            Measurement(
                configuration=label,
                page=page,
                path=path,
                page_result=comparison.page,
                ceiling_result=comparison.ceiling,
                round_ratios=comparison.round_ratios,
                target=TARGET_SIGNED_IN if cookie else TARGET_CACHED if cached else TARGET_UNCACHED,
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
        configurations = [
            ("off", "page cache off", 0),
            ("on", "page cache on", CACHED_PAGE_SECONDS),
            ("signed-in", "signed in", CACHED_PAGE_SECONDS),
        ]
        for name, label, seconds in configurations:
            chosen = {"both": ("off", "on"), "all": ("off", "on", "signed-in")}.get(args.page_cache, (args.page_cache,))
            if name not in chosen:
                continue
            _harness.flush_redis_database(args.redis_url)
            cookie = signed_in_cookie() if name == "signed-in" else ""
            server = _harness.Server(
                app="bench.wsgi:application",
                environment=environment(seconds),
                log_path=work_dir / "gunicorn.log",
                workers=args.workers,
                worker_class=args.worker_class,
                threads=args.threads,
            )
            with server:
                measurements += measure_configuration(
                    args, server, label=label, cached=bool(seconds), pages=pages, cookie=cookie
                )
            if "Traceback" in server.log_tail(200):
                print(f"The server logged errors:\n{server.log_tail()}")
        print_report(args, measurements, (load_before, os.getloadavg()[0]))
        return 1 if any(m.page_result.errors or m.ceiling_result.errors for m in measurements) else 0
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
