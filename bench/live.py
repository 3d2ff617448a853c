"""Live threads under load: what 1,000 open threads polling for new comments add to the server's CPU.

Starts the app under gunicorn with production settings (two sync workers, PostgreSQL, Redis, the visitor
page cache on as shipped) and seeds stories with comments. Then, in rounds, it runs the same steady
open-loop traffic without and with the open threads: visitors reading story pages and the list at a
fixed rate, and a comment posted every few seconds on one of the polled stories (which invalidates that
story's cached pages and poll answer, as a real comment does). With the threads, each of them also asks
its story's live endpoint every COMMENTS_LIVE_POLL_SECONDS, as static/js/comments.js does: without
cookies, at its own phase. Server CPU is the gunicorn workers' plus their PostgreSQL backends', read
from /proc; what the threads add is the difference per second of wall time, as a share of one CPU
(target: under 10 %). Run from the project root (PostgreSQL and Redis must be running):

    .venv/bin/python bench/live.py --database-url postgres://postgres@127.0.0.1:5432/newsreader_bench_live
"""

import argparse
import os
import random
import selectors
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import _harness
import pages

# Share of one CPU the open threads may add to the server (issue 16).
TARGET_ADDED_SHARE = 0.10
PAGE_CACHE_SECONDS = 60  # the shipped default
HOST = _harness.HOST
_VOCABULARY = """
ferry harbour tram bus bridge council budget vote plan station river port night timetable fare ticket
bike crossing winter summer route crew captain pier island coast town city mayor report data study
price cost delay service schedule battery power grid quiet busy early late morning evening weekend
"""
_WORDS = _VOCABULARY.split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_LIVE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/newsreader_bench_live"),
        help="a PostgreSQL database the benchmark owns: dropped and recreated unless --reuse-database",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
        help="a Redis database the benchmark owns: it is emptied first",
    )
    parser.add_argument("--reuse-database", action="store_true", help="keep the last run's database and stories")
    parser.add_argument("--threads", type=int, default=1000, help="open threads polling (default 1000)")
    parser.add_argument("--poll-seconds", type=int, default=20, help="COMMENTS_LIVE_POLL_SECONDS (default 20)")
    parser.add_argument("--stories", type=int, default=200, help="stories the threads are open on (default 200)")
    parser.add_argument("--page-rate", type=float, default=20.0, help="pages per second read by visitors (default 20)")
    parser.add_argument("--comment-every", type=float, default=2.0, help="seconds between new comments (default 2)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per phase (default 30)")
    parser.add_argument("--warmup", type=float, default=10.0, help="warm-up seconds, threads polling (default 10)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of one phase without and one with the threads (default 3)"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    return parser.parse_args()


def seed(*, stories: int, seed: int = 20261206) -> None:
    """Stories with 0 to 40 published comments each, and readers who post; no moderation rule holds or
    limits the benchmark's comments, so each one is published and changes its story's count."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from comments.models import Comment, ModerationRule
    from stories.models import Section, Source, Story

    rng = random.Random(seed)
    User = get_user_model()
    now = timezone.now()
    with transaction.atomic():
        ModerationRule.objects.all().delete()
        section, _ = Section.objects.get_or_create(slug="local", defaults={"name": "Local"})
        sources = [
            Source.objects.create(
                name=f"Live Bench {number}",
                slug=f"live-bench-{number}",
                feed_url=f"https://live-bench-{number}.example.org/feed.xml",
            )
            for number in range(3)
        ]
        readers = User.objects.bulk_create(
            User(username=f"reader{n}", email=f"reader{n}@example.org", date_joined=now - timedelta(days=400))
            for n in range(40)
        )
        EmailAddress.objects.bulk_create(
            EmailAddress(user=user, email=user.email, verified=True, primary=True) for user in readers
        )
        created = Story.objects.bulk_create(
            Story(
                source=rng.choice(sources),
                section=section,
                title=" ".join(rng.choices(_WORDS, k=9)).capitalize(),
                slug=f"live-story-{number}",
                dek=" ".join(rng.choices(_WORDS, k=25)).capitalize() + ".",
                body_html="".join(f"<p>{' '.join(rng.choices(_WORDS, k=80))}.</p>" for _ in range(6)),
                original_url=f"https://news.example.org/live/{number}",
                status=Story.Status.PUBLISHED,
                published_at=now - timedelta(hours=rng.randint(1, 48)),
            )
            for number in range(stories)
        )
        for story in created:
            count = rng.randint(0, 40)
            Comment.objects.bulk_create(
                Comment(
                    story=story,
                    author=rng.choice(readers),
                    body_source=f"Comment {n}.",
                    body_html=f"<p>{' '.join(rng.choices(_WORDS, k=20))}.</p>",
                    created_at=now - timedelta(minutes=count - n),
                )
                for n in range(count)
            )
            Story.objects.filter(pk=story.pk).update(comment_count=count)


def prepare(args: argparse.Namespace) -> list[str]:
    """A fresh, migrated and seeded database and collected static files; returns the stories' slugs."""
    from django.core.management import call_command
    from django.db import connections

    from stories.models import Story

    _harness.flush_redis_database(args.redis_url)
    if not args.reuse_database:
        _harness.recreate_postgres_database(args.database_url)
        call_command("migrate", "--noinput", verbosity=0)
        print(f"Seeding {args.stories} stories with comments…", flush=True)
        seed(stories=args.stories)
        with connections["default"].cursor() as cursor:
            cursor.execute("ANALYZE")
    call_command("collectstatic", "--noinput", verbosity=0)
    slugs = list(Story.objects.filter(slug__startswith="live-story-").order_by("pk").values_list("slug", flat=True))
    if len(slugs) < args.stories:
        raise SystemExit(f"The database holds {len(slugs)} benchmark stories, fewer than {args.stories}: reseed.")
    return slugs[: args.stories]


class CommentPoster:
    """Posts a comment on one of the polled stories through the product's own service, in this process: the
    story's count changes and its cached pages and poll answer are invalidated, as for a reader's comment."""

    def __init__(self, slugs: list[str], seed: int = 7) -> None:
        from django.contrib.auth import get_user_model
        from django.db import connection

        from stories.models import Story

        self.rng = random.Random(seed)
        self.stories = list(Story.objects.filter(slug__in=slugs))
        self.authors = list(get_user_model().objects.filter(username__startswith="reader"))
        self.posted = 0
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            # This process's own database connection: its work is the client's, not the server's.
            self.database_pid = cursor.fetchone()[0]

    def post(self) -> None:
        from comments import services

        body = " ".join(self.rng.choices(_WORDS, k=self.rng.randint(8, 30))).capitalize() + "."
        services.comment_create(story=self.rng.choice(self.stories), author=self.rng.choice(self.authors), body=body)
        self.posted += 1


@dataclass(frozen=True)
class Phase:
    """One measured stretch of traffic: what was answered, and the CPU it cost."""

    threads: bool
    seconds: float
    answered: dict[str, int]
    errors: int
    latencies_ms: dict[str, tuple[float, ...]]
    server_cpu_seconds: float
    database_cpu_seconds: float
    client_cpu_seconds: float
    machine_busy: float
    machine_total: float
    comments: int

    @property
    def cpu_share(self) -> float:
        """Of one CPU: the workers and their PostgreSQL backends, per second of wall time."""
        return (self.server_cpu_seconds + self.database_cpu_seconds) / self.seconds

    def percentile_ms(self, kind: str, fraction: float) -> float:
        ordered = self.latencies_ms.get(kind, ())
        if not ordered:
            return 0.0
        return ordered[min(len(ordered), max(1, int(fraction * len(ordered) + 0.999999))) - 1]

    @property
    def elsewhere_share(self) -> float:
        """Of the machine's CPU, the share used outside the client, the workers and their backends."""
        measured = self.client_cpu_seconds + self.server_cpu_seconds + self.database_cpu_seconds
        return max(0.0, self.machine_busy - measured) / self.machine_total if self.machine_total else 0.0


class _Exchange:
    """One request on its own connection (sync workers close after each response) and its response."""

    __slots__ = ("buffer", "close_after", "header_end", "kind", "length", "sent_ns", "sock", "status")

    def __init__(self, sock: socket.socket, kind: str) -> None:
        self.sock = sock
        self.kind = kind
        self.buffer = bytearray()
        self.header_end = -1
        self.length = -1
        self.status = 0
        self.close_after = False
        self.sent_ns = time.perf_counter_ns()


def traffic_schedule(
    *, slugs: list[str], seconds: float, page_rate: float, threads: int, poll_seconds: int, rng: random.Random
) -> list[tuple[float, str, bytes]]:
    """(seconds from the start, kind, request) in time order: pages at a steady rate (the story pages of the
    polled stories, and the list one time in five), and, with threads, each thread's polls at its phase."""
    events = []
    for number in range(int(seconds * page_rate)):
        path = "/" if number % 5 == 4 else f"/stories/{rng.choice(slugs)}/"
        events.append((number / page_rate, "page", _request(path, accept="text/html")))
    for thread in range(threads):
        slug = slugs[thread % len(slugs)]
        request = _request(f"/comments/{slug}/live/", accept="application/json")
        at = rng.uniform(0, poll_seconds)
        while at < seconds:
            events.append((at, "poll", request))
            at += poll_seconds
    events.sort(key=lambda event: event[0])
    return events


def _request(path: str, *, accept: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: newsreader-bench\r\nAccept: {accept}\r\n\r\n".encode()


def run_phase(
    *,
    port: int,
    schedule: list[tuple[float, str, bytes]],
    seconds: float,
    comment_every: float,
    poster: CommentPoster,
    server_pids: Callable[[], list[int]],
    database_pids: Callable[[], list[int]],
    threads: bool,
) -> Phase:
    """Send each request of `schedule` at its time, whatever the answers to the earlier ones (open loop), and
    post a comment every `comment_every` seconds; measure CPU over the `seconds` the schedule spans."""
    selector = selectors.DefaultSelector()
    in_flight = 0
    answered: dict[str, int] = {}
    latencies: dict[str, list[float]] = {}
    errors = 0
    server, database = server_pids(), database_pids()
    server_before = _harness.process_cpu_seconds(server)
    database_before = _harness.process_cpu_seconds(database)
    machine_before = _harness.machine_cpu_times()
    client_before = time.process_time()
    comments_before = poster.posted
    start = time.perf_counter()
    next_comment = comment_every
    index = 0
    measured_until = None

    while True:
        now = time.perf_counter() - start
        if measured_until is None and now >= seconds:
            measured_until = now
            server_after = _harness.process_cpu_seconds(server)
            database_after = _harness.process_cpu_seconds(database)
            machine_after = _harness.machine_cpu_times()
            client_after = time.process_time()
        if measured_until is not None and (in_flight == 0 or now > seconds + 10):
            break
        while index < len(schedule) and schedule[index][0] <= now:
            _, kind, request = schedule[index]
            index += 1
            try:
                sock = socket.create_connection((HOST, port), timeout=5)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.sendall(request)
                sock.setblocking(False)
            except OSError:
                errors += 1
                continue
            selector.register(sock, selectors.EVENT_READ, _Exchange(sock, kind))
            in_flight += 1
        if measured_until is None and now >= next_comment:
            poster.post()
            next_comment += comment_every
        next_at = schedule[index][0] if index < len(schedule) else seconds
        timeout = max(0.0, min(next_at, next_comment, seconds) - (time.perf_counter() - start))
        for key, _ in selector.select(timeout=0.05 if measured_until is not None else min(timeout, 0.05)):
            exchange: _Exchange = key.data
            try:
                chunk = exchange.sock.recv(1 << 18)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if chunk:
                exchange.buffer += chunk
                if exchange.header_end < 0 and not _harness.read_head(exchange):
                    continue
                if exchange.length < 0 or len(exchange.buffer) < exchange.header_end + exchange.length:
                    continue  # without Content-Length the response ends when the server closes
            done = chunk or exchange.length < 0
            selector.unregister(exchange.sock)
            exchange.sock.close()
            in_flight -= 1
            if not done or exchange.status != 200:
                errors += 1
                continue
            if measured_until is None:
                answered[exchange.kind] = answered.get(exchange.kind, 0) + 1
                latency = (time.perf_counter_ns() - exchange.sent_ns) / 1e6
                latencies.setdefault(exchange.kind, []).append(latency)
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    selector.close()
    return Phase(
        threads=threads,
        seconds=measured_until,
        answered=answered,
        errors=errors,
        latencies_ms={kind: tuple(sorted(values)) for kind, values in latencies.items()},
        server_cpu_seconds=_harness.cpu_seconds_between(server_before, server_after),
        database_cpu_seconds=_harness.cpu_seconds_between(database_before, database_after),
        client_cpu_seconds=client_after - client_before,
        machine_busy=machine_after[0] - machine_before[0],
        machine_total=machine_after[1] - machine_before[1],
        comments=poster.posted - comments_before,
    )


def check_server(server: _harness.Server, slug: str) -> int:
    """The story page and its poll answer 200, and the second poll is a page cache hit; the poll's size."""
    status, _, _ = _harness.http_get(server.port, f"/stories/{slug}/")
    if status != 200:
        raise SystemExit(f"The story page answered {status}. The server's log ends with:\n{server.log_tail()}")
    for _ in range(2):
        status, headers, body = _harness.http_get(server.port, f"/comments/{slug}/live/")
        if status != 200 or not body.startswith(b'{"count": '):
            raise SystemExit(f"The poll answered {status}: {body[:200]!r}\n{server.log_tail()}")
    if headers.get("x-page-cache") != "hit":
        raise SystemExit("The second poll was not answered from the page cache.")
    return len(body)


def print_phase(label: str, phase: Phase) -> None:
    pages, polls = phase.answered.get("page", 0), phase.answered.get("poll", 0)
    print(
        f"  {label:<9} {'with' if phase.threads else 'without':<7} threads: {pages / phase.seconds:5.1f} pages/s"
        f" (p50 {phase.percentile_ms('page', 0.5):6.2f} ms, p99 {phase.percentile_ms('page', 0.99):6.2f} ms)"
        f"  {polls / phase.seconds:5.1f} polls/s (p50 {phase.percentile_ms('poll', 0.5):5.2f} ms,"
        f" p99 {phase.percentile_ms('poll', 0.99):6.2f} ms)  {phase.comments} comments  errors {phase.errors}"
        f"  server CPU {phase.cpu_share:6.1%} of a CPU (workers {phase.server_cpu_seconds / phase.seconds:5.1%},"
        f" PostgreSQL {phase.database_cpu_seconds / phase.seconds:5.1%})  elsewhere {phase.elsewhere_share:4.0%}",
        flush=True,
    )


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    work_dir = Path(tempfile.mkdtemp(prefix="newsreader-bench-live-"))
    load_before = os.getloadavg()[0]
    try:
        environment = _harness.production_environment(
            database_url=args.database_url,
            redis_url=args.redis_url,
            work_dir=work_dir,
            page_cache_seconds=PAGE_CACHE_SECONDS,
        )
        environment["COMMENTS_LIVE_POLL_SECONDS"] = str(args.poll_seconds)
        # The workers keep their database connections through the run: CPU is read per backend process, and
        # one a worker reopened mid-phase (every CONN_MAX_AGE, 60 s by default) would drop out of the count.
        environment["CONN_MAX_AGE"] = "3600"
        pages.setup_django(environment, work_dir / "static")
        slugs = prepare(args)
        poster = CommentPoster(slugs)
        rng = random.Random(20261206)

        def database_pids() -> list[int]:
            return [pid for pid in _harness.postgres_backend_pids(args.database_url) if pid != poster.database_pid]

        server = _harness.Server(
            app="bench.wsgi:application",
            environment=environment,
            log_path=work_dir / "gunicorn.log",
            workers=args.workers,
            worker_class="sync",
            threads=1,
        )
        with server:
            poll_bytes = check_server(server, slugs[0])

            def phase(seconds: float, *, threads: bool) -> Phase:
                schedule = traffic_schedule(
                    slugs=slugs,
                    seconds=seconds,
                    page_rate=args.page_rate,
                    threads=args.threads if threads else 0,
                    poll_seconds=args.poll_seconds,
                    rng=rng,
                )
                return run_phase(
                    port=server.port,
                    schedule=schedule,
                    seconds=seconds,
                    comment_every=args.comment_every,
                    poster=poster,
                    server_pids=server.worker_pids,
                    database_pids=database_pids,
                    threads=threads,
                )

            print_phase("warm-up", phase(args.warmup, threads=True))
            pairs = []
            for round_number in range(args.rounds):
                order = (False, True) if round_number % 2 == 0 else (True, False)
                results = {}
                for threads in order:
                    results[threads] = phase(args.seconds, threads=threads)
                    print_phase(f"round {round_number + 1}", results[threads])
                pairs.append((results[False], results[True]))

            # A poll's own cost next to a bare Django view's, each at full speed (closed loop, 4 connections).
            closed_loop = {}
            for label, path in (
                ("poll", f"/comments/{slugs[0]}/live/"),
                ("bare view", f"/__bench__/ceiling/{poll_bytes}/"),
            ):
                closed_loop[label] = _harness.run_load(
                    port=server.port,
                    path=path,
                    concurrency=4,
                    seconds=4,
                    warmup_seconds=1,
                    server_pids=server.worker_pids,
                    database_pids=database_pids,
                )
        if "Traceback" in server.log_tail(200):
            print(f"The server logged errors:\n{server.log_tail()}")
        report(args, pairs, closed_loop, (load_before, os.getloadavg()[0]))
        return 1 if any(p.errors for pair in pairs for p in pair) else 0
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def report(
    args: argparse.Namespace,
    pairs: list[tuple[Phase, Phase]],
    closed_loop: dict[str, _harness.LoadResult],
    load: tuple[float, float],
) -> None:
    added = [with_threads.cpu_share - without.cpu_share for without, with_threads in pairs]
    polls = sum(with_threads.answered.get("poll", 0) for _, with_threads in pairs)
    poll_seconds = sum(with_threads.seconds for _, with_threads in pairs)
    added_cpu_seconds = sum(
        (w.server_cpu_seconds + w.database_cpu_seconds)
        - (o.server_cpu_seconds + o.database_cpu_seconds) * w.seconds / o.seconds
        for o, w in pairs
    )
    share = statistics.median(added)
    verdict = "met" if share < TARGET_ADDED_SHARE else "NOT MET"
    print()
    print(
        f"{args.threads} open threads on {args.stories} stories, each polling every {args.poll_seconds} s; "
        f"{args.page_rate:g} pages/s and a comment every {args.comment_every:g} s throughout; gunicorn sync, "
        f"{args.workers} workers; {args.rounds} rounds of {args.seconds:g} s without and with the threads; "
        f"{os.cpu_count()} CPUs, load average before/after {load[0]:.2f}/{load[1]:.2f}"
    )
    print(
        f"Server CPU (workers + PostgreSQL) without the threads: "
        f"{statistics.mean(o.cpu_share for o, _ in pairs):.1%} of one CPU; with them: "
        f"{statistics.mean(w.cpu_share for _, w in pairs):.1%}"
    )
    print(
        f"Added by the open threads (median of the rounds): {share:.1%} of one CPU"
        f" (rounds: {' / '.join(f'{a:.1%}' for a in added)}; "
        f"{share / (os.cpu_count() or 1):.1%} of the machine) — target < {TARGET_ADDED_SHARE:.0%}: {verdict}"
    )
    if polls:
        print(
            f"That is {added_cpu_seconds * 1000 / polls:.2f} ms of server CPU per poll over {polls / poll_seconds:.1f}"
            " polls/s, misses after each new comment and page expiry included."
        )
    poll, bare = closed_loop["poll"], closed_loop["bare view"]
    bare_cpu = bare.server_cpu_ms_per_request + bare.database_cpu_ms_per_request
    poll_cpu = poll.server_cpu_ms_per_request + poll.database_cpu_ms_per_request
    print(
        f"At full speed (4 connections, one story): a poll {poll.per_second:.0f} req/s, {poll_cpu:.2f} ms CPU each;"
        f" a bare Django view of the same size {bare.per_second:.0f} req/s, {bare_cpu:.2f} ms CPU each"
        f" (poll/bare view throughput {poll.per_second / bare.per_second if bare.per_second else 0:.2f})."
    )
    print("Redis's own CPU is not counted (a shared server); neither is the client's.")


if __name__ == "__main__":
    sys.exit(main())
