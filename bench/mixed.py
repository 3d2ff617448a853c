"""A realistic mix against the production server, next to the bare view of the same size in the same run.

For `--seconds` (default 60) on gunicorn with production settings, PostgreSQL and Redis, a real
Celery worker and a local feed server, after `--warmup-seconds` (default 5) of the same reads and
posts, not counted:
  - 16 connections read pages: 70 % as visitors, 30 % as signed-in readers, over the front page, two
    sections' lists and 50 stories;
  - a signed-in reader posts a comment every half second, to one of those stories;
  - every 30 s, 20 new stories arrive in a feed and the worker imports, labels and illustrates them
    (the worker has imported once before the mix starts, as a running site's worker has).
Prints throughput and p50/p99 for each kind of request, the visitor page cache's hit rate, the posts
answered, refused or failed, the stories imported, and the reads' throughput as a ratio to a bare
Django view serving a page of the reads' median size from the same server (measured after the mix
with the same 16 connections). Run from the project root (PostgreSQL and Redis must be running):

    .venv/bin/python bench/mixed.py --database-url postgres://postgres@127.0.0.1:5432/newsreader_mixed_bench
"""

import argparse
import itertools
import os
import random
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import _harness
import pages

TARGET_MIX, TARGET_READ_P99_MS = 0.5, 50.0
CONNECTIONS = 16
SIGNED_IN_SHARE = 0.3
LIST_SHARE = 0.3
STORIES_READ = 50
READERS = 60
POST_EVERY_SECONDS = 0.5
IMPORT_EVERY_SECONDS = 30
STORIES_PER_IMPORT = 20
CACHED_PAGE_SECONDS = 300
# The front page and two sections' lists (the list pages by a cursor, so their later pages have no fixed URL).
LIST_PATHS = ("/", "/?section=world", "/?section=technology")
_WORDS = ("harbour", "council", "tram", "budget", "ferry", "school", "vote", "river", "bridge", "market", "storm")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_MIXED_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/newsreader_mixed_bench"),
        help="a PostgreSQL database the benchmark owns: dropped and recreated",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_MIXED_REDIS_URL", "redis://127.0.0.1:6379/14"),
        help="a Redis database the benchmark owns: emptied first (also the Celery broker)",
    )
    parser.add_argument("--stories", type=int, default=500, help="stories to seed (default 500)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the mix (default 60)")
    parser.add_argument(
        "--warmup-seconds", type=float, default=5.0, help="reads and posts before the mix, not counted (default 5)"
    )
    parser.add_argument("--ceiling-seconds", type=float, default=10.0, help="length of the ceiling's run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    return parser.parse_args()


class FeedServer:
    """One RSS feed on 127.0.0.1 that grows by STORIES_PER_IMPORT entries each time `grow` is called."""

    def __init__(self) -> None:
        self.entries = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = server.feed()
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer((_harness.HOST, 0), Handler)
        self.url = f"http://{_harness.HOST}:{self.httpd.server_address[1]}/feed.xml"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def grow(self) -> None:
        with self.lock:
            self.entries += STORIES_PER_IMPORT

    def feed(self) -> bytes:
        with self.lock:
            newest = self.entries
        now = datetime.now(UTC)
        items = []
        for number in range(max(0, newest - 60), newest):
            rng = random.Random(number)
            words = " ".join(rng.choices(_WORDS, k=60))
            items.append(
                f"<item><title>Bulletin {number}: the {rng.choice(_WORDS)} {rng.choice(_WORDS)} question</title>"
                f"<link>https://wire.example.org/{number}</link><guid>wire-{number}</guid>"
                f"<pubDate>{format_datetime(now - timedelta(seconds=newest - number), usegmt=True)}</pubDate>"
                f"<description>{words.capitalize()}.</description></item>"
            )
        return (
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>{"".join(items)}</channel></rss>'
        ).encode()


def seed_readers() -> list[tuple[str, str]]:
    """Established readers with verified addresses and open sessions: (session key, CSRF token) each.

    The comment rate limits are raised so the mix's posters (one post per reader every 30 s) are
    not refused: the benchmark measures serving, not the limits."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.cached_db import SessionStore
    from django.utils import timezone

    from comments.models import ModerationRule

    ModerationRule.objects.filter(kind="rate_limit").update(limit=1_000_000)
    User = get_user_model()
    joined = timezone.now() - timedelta(days=400)
    readers = User.objects.bulk_create(
        User(username=f"mixreader{n}", email=f"mixreader{n}@example.org", date_joined=joined) for n in range(READERS)
    )
    EmailAddress.objects.bulk_create(
        EmailAddress(user=user, email=user.email, verified=True, primary=True) for user in readers
    )
    sessions = []
    for reader in readers:
        session = SessionStore()
        session[SESSION_KEY] = str(reader.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = reader.get_session_auth_hash()
        session.create()
        sessions.append((session.session_key, uuid.uuid4().hex))
    return sessions


def prepare(args: argparse.Namespace, feed_url: str) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Migrated and seeded database; returns story paths and slugs to read and post to, and sessions."""
    from django.core.management import call_command
    from django.db import connections

    from stories.models import Source, Story

    pages.prepare(
        argparse.Namespace(
            redis_url=args.redis_url, database_url=args.database_url, reuse_database=False, stories=args.stories
        )
    )
    sessions = seed_readers()
    Source.objects.create(name="Wire", slug="wire", feed_url=feed_url)
    stories = list(Story.objects.published().order_by("-published_at")[:STORIES_READ])
    call_command("collectstatic", "--noinput", verbosity=0)
    connections.close_all()
    return [story.get_absolute_url() for story in stories], [story.slug for story in stories], sessions


@dataclass
class Kind:
    """What one kind of request saw in the measured window."""

    answered: int = 0
    failed: int = 0
    refused: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    hits: int = 0

    def percentile_ms(self, fraction: float) -> float:
        return _harness._percentile(tuple(sorted(self.latencies_ns)), fraction)


class _Connection:
    __slots__ = ("buffer", "close_after", "header_end", "kind", "length", "sent_ns", "sock", "status")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.buffer = bytearray()
        self.kind = ""
        self.sent_ns = 0
        self.header_end = self.length = -1
        self.status = 0
        self.close_after = False


def warm_up_worker(wire, feeds: FeedServer, *, timeout: float = 180.0) -> None:
    """One import carried through labelling and pictures before the mix: the mix measures a site whose
    worker is already running, not the worker starting (loading the labeller takes seconds of CPU)."""
    from stories import pipeline
    from stories.models import Story

    print("Warming the worker up with one import…", flush=True)
    stories_before = Story.objects.count()
    feeds.grow()
    pipeline.request_import(source=wire)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        imported = Story.objects.count() - stories_before
        if imported >= STORIES_PER_IMPORT and not Story.objects.in_pipeline().exists():
            return
        time.sleep(0.5)
    raise SystemExit(f"The worker did not import and label the warm-up feed within {timeout:.0f} s")


def run_mix(
    *,
    port: int,
    seconds: float,
    story_paths: list[str],
    slugs: list[str],
    sessions: list[tuple[str, str]],
    on_tick,
    post_numbers: Iterator[int],
) -> dict[str, Kind]:
    """Reads on CONNECTIONS connections (closed loop) and a post every POST_EVERY_SECONDS (open loop)."""
    rng = random.Random(20261206)
    selector = selectors.DefaultSelector()
    kinds = {name: Kind() for name in ("visitor list", "visitor story", "reader list", "reader story", "post")}

    def read_request() -> tuple[str, bytes]:
        signed_in = rng.random() < SIGNED_IN_SHARE
        is_list = rng.random() < LIST_SHARE
        path = rng.choice(LIST_PATHS) if is_list else rng.choice(story_paths)
        cookie = ""
        if signed_in:
            session_key, csrf = rng.choice(sessions)
            cookie = f"Cookie: sessionid={session_key}; csrftoken={csrf}\r\n"
        kind = f"{'reader' if signed_in else 'visitor'} {'list' if is_list else 'story'}"
        head = f"GET {path} HTTP/1.1\r\nHost: {_harness.HOST}\r\nUser-Agent: newsreader-bench\r\n{cookie}\r\n"
        return kind, head.encode()

    def post_request() -> bytes:
        posted = next(post_numbers)
        session_key, csrf = sessions[posted % len(sessions)]
        text = f"mixed post {posted}: " + " ".join(rng.choices(_WORDS, k=rng.randint(8, 30)))
        body = urlencode({"body": text, "idempotency_key": str(uuid.uuid4())}).encode()
        head = (
            f"POST /comments/{rng.choice(slugs)}/post/ HTTP/1.1\r\nHost: {_harness.HOST}\r\n"
            f"User-Agent: newsreader-bench\r\nCookie: sessionid={session_key}; csrftoken={csrf}\r\n"
            f"X-CSRFToken: {csrf}\r\nHX-Request: true\r\nConnection: close\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def send(connection: _Connection, kind: str, request: bytes) -> None:
        if connection.sock is None:
            connection.sock = socket.create_connection((_harness.HOST, port))
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            selector.register(connection.sock, selectors.EVENT_READ, connection)
        connection.buffer.clear()
        connection.header_end = connection.length = -1
        connection.close_after = False
        connection.kind = kind
        connection.sent_ns = time.perf_counter_ns()
        connection.sock.sendall(request)

    def close(connection: _Connection) -> None:
        selector.unregister(connection.sock)
        connection.sock.close()
        connection.sock = None

    def finish(connection: _Connection, done_ns: int, in_window: bool) -> None:
        kind = kinds[connection.kind]
        if in_window:
            if connection.status == 200:
                kind.answered += 1
                kind.latencies_ns.append(done_ns - connection.sent_ns)
                kind.sizes.append(connection.length)
                kind.hits += b"\r\nx-page-cache: hit" in bytes(connection.buffer[: connection.header_end]).lower()
            elif connection.status in (409, 429):
                kind.refused += 1
            else:
                kind.failed += 1

    readers = [_Connection() for _ in range(CONNECTIONS)]
    for connection in readers:
        send(connection, *read_request())
    start = time.perf_counter_ns()
    stop_at = start + int(seconds * 1e9)
    next_post = start
    last_tick = start
    while True:
        now = time.perf_counter_ns()
        if now >= stop_at:
            break
        if now - last_tick >= 1e9:
            on_tick((now - start) / 1e9)
            last_tick = now
        if now >= next_post:
            send(_Connection(), "post", post_request())
            next_post += int(POST_EVERY_SECONDS * 1e9)
        for key, _ in selector.select(timeout=0.02):
            connection: _Connection = key.data
            try:
                chunk = connection.sock.recv(1 << 18)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                if connection.header_end >= 0 and connection.length < 0:
                    finish(connection, time.perf_counter_ns(), True)  # framed by the close
                elif connection.sent_ns:
                    kinds[connection.kind].failed += 1
                close(connection)
                if connection in readers:
                    send(connection, *read_request())
                continue
            connection.buffer += chunk
            if connection.header_end < 0 and not _harness.read_head(connection):
                continue
            if connection.length < 0 or len(connection.buffer) < connection.header_end + connection.length:
                continue
            done = time.perf_counter_ns()
            finish(connection, done, done < stop_at)
            connection.sent_ns = 0
            if connection.close_after or connection not in readers:
                close(connection)
            if connection in readers:
                send(connection, *read_request())
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    selector.close()
    return kinds


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    work_dir = Path(tempfile.mkdtemp(prefix="newsreader-mixed-"))
    feeds = FeedServer()
    worker = None
    try:
        environment = _harness.production_environment(
            database_url=args.database_url,
            redis_url=args.redis_url,
            work_dir=work_dir,
            page_cache_seconds=CACHED_PAGE_SECONDS,
        )
        environment["FETCH_ALLOWED_NETWORKS"] = "127.0.0.0/8"
        pages.setup_django(environment, work_dir / "static")
        story_paths, slugs, sessions = prepare(args, feeds.url)

        from stories import pipeline
        from stories.models import Source, Story

        worker_log = (work_dir / "worker.log").open("ab")
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "newsreader", "worker", "--concurrency", "1", "-l", "WARNING"],
            cwd=_harness.ROOT,
            env=environment,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wire = Source.objects.get(slug="wire")
        warm_up_worker(wire, feeds)
        stories_before = Story.objects.count()
        server = _harness.Server(
            app="bench.wsgi:application",
            environment=environment,
            log_path=work_dir / "gunicorn.log",
            workers=args.workers,
            worker_class="sync",
            threads=1,
        )
        imports = 0

        def on_tick(elapsed: float) -> None:
            nonlocal imports
            if elapsed >= imports * IMPORT_EVERY_SECONDS:
                imports += 1
                feeds.grow()
                pipeline.request_import(source=wire)

        with server:
            for path in (*LIST_PATHS, story_paths[0]):
                status, _, _ = _harness.http_get(server.port, path)
                if status != 200:
                    raise SystemExit(f"{path} answered {status}:\n{server.log_tail()}")
            # Each post is by the next reader in turn, through the warm-up and the mix alike.
            post_numbers = itertools.count(1)
            if args.warmup_seconds > 0:
                # The same reads and posts, not counted: the workers' first requests fill what each process
                # keeps (articles, threads, readers' facts), as a running site's workers already have.
                print(f"Warming the server up for {args.warmup_seconds:g} s…", flush=True)
                run_mix(
                    port=server.port,
                    seconds=args.warmup_seconds,
                    story_paths=story_paths,
                    slugs=slugs,
                    sessions=sessions,
                    on_tick=lambda elapsed: None,
                    post_numbers=post_numbers,
                )
            workers = server.worker_pids()
            cpu_before = _harness.process_cpu_seconds(workers)
            machine_before = _harness.machine_cpu_times()
            print(f"Mixing for {args.seconds:g} s…", flush=True)
            kinds = run_mix(
                port=server.port,
                seconds=args.seconds,
                story_paths=story_paths,
                slugs=slugs,
                sessions=sessions,
                on_tick=on_tick,
                post_numbers=post_numbers,
            )
            worker_cpu = _harness.cpu_seconds_between(cpu_before, _harness.process_cpu_seconds(workers))
            machine_after = _harness.machine_cpu_times()
            reads = [kind for name, kind in kinds.items() if name != "post"]
            sizes = [size for kind in reads for size in kind.sizes]
            size = int(statistics.median(sizes)) if sizes else 1000
            ceiling = _harness.run_load(
                port=server.port,
                path=f"/__bench__/ceiling/{size}/",
                concurrency=CONNECTIONS,
                seconds=args.ceiling_seconds,
                warmup_seconds=1.0,
            )
            errors_logged = "Traceback" in server.log_tail(400)
        imported = Story.objects.count() - stories_before
        print_report(args, kinds, ceiling, imported, imports, worker_cpu, machine_after[0] - machine_before[0])
        if errors_logged:
            print(f"The server logged errors:\n{server.log_tail()}")
        return 1 if any(kind.failed for kind in kinds.values()) else 0
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        feeds.httpd.shutdown()
        shutil.rmtree(work_dir, ignore_errors=True)


def print_report(args, kinds: dict[str, Kind], ceiling, imported: int, imports: int, worker_cpu, machine_busy) -> None:
    print()
    header = f"{'request':<14} {'answered':>8} {'per s':>7} {'p50 ms':>7} {'p99 ms':>7} {'refused':>7} {'failed':>6}"
    print(header)
    print("-" * len(header))
    for name, kind in kinds.items():
        print(
            f"{name:<14} {kind.answered:>8} {kind.answered / args.seconds:>7.1f} {kind.percentile_ms(0.5):>7.2f}"
            f" {kind.percentile_ms(0.99):>7.2f} {kind.refused:>7} {kind.failed:>6}"
        )
    reads = [kind for name, kind in kinds.items() if name != "post"]
    all_reads = Kind(latencies_ns=[latency for kind in reads for latency in kind.latencies_ns])
    read_rate = sum(kind.answered for kind in reads) / args.seconds
    visitors = [kinds["visitor list"], kinds["visitor story"]]
    visitor_answers = sum(kind.answered for kind in visitors)
    hit_rate = sum(kind.hits for kind in visitors) / visitor_answers if visitor_answers else 0.0
    ratio = read_rate / ceiling.per_second if ceiling.per_second else 0.0
    print()
    print(
        f"reads: {read_rate:.1f}/s, p50 {all_reads.percentile_ms(0.5):.2f} ms,"
        f" p99 {all_reads.percentile_ms(0.99):.2f} ms"
        f" (target < {TARGET_READ_P99_MS:g} ms); visitor page cache hit rate {hit_rate:.0%}"
    )
    print(f"ceiling (bare view, {ceiling.response_bytes} bytes, {CONNECTIONS} connections): {ceiling.per_second:.1f}/s")
    print(f"mix / ceiling: {ratio:.2f} (target ≥ {TARGET_MIX})")
    print(f"imports: {imports} feed updates of {STORIES_PER_IMPORT} stories, {imported} stories stored during the run")
    print(f"gunicorn workers' CPU: {worker_cpu:.1f} s of {args.seconds:g} s; machine busy {machine_busy:.1f} CPU-s")


if __name__ == "__main__":
    sys.exit(main())
