"""The comment thread and comment posting under load, on gunicorn with production settings.

Seeds one story with a 500-comment thread, then measures (each against a bare Django view serving a
pre-rendered page of the same size from the same server, the ceiling):
  - the thread fragment's first page, rendered on every request (visitor page cache off), and served
    from the visitor page cache (on); the story page itself alongside;
  - posting: after a warm-up of the same load (`--warmup` seconds, not measured), 20 readers posting at
    once over their own sessions, closed loop (each sends its next comment when the last is answered),
    half of them replies, one in ten submitted twice with the same form key as a double click would.
    Prints throughput, p50/p99 latency, the workers' and PostgreSQL's CPU time per comment, and whether
    any comment was lost or duplicated; then where the tail is: a latency histogram, the posts sent after
    the first second on their own, how long answers waited for this client, and when the slowest 1% were sent.
Everything runs on 127.0.0.1, bounded in time and requests. Run from the project root (PostgreSQL
and Redis must be running); `--only posts` (or `--only reads`) measures one half:

    .venv/bin/python bench/comments.py --database-url postgres://postgres@127.0.0.1:5432/newsreader_comments_bench
"""

import argparse
import heapq
import os
import random
import selectors
import shutil
import signal
import socket
import statistics
import struct
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import _harness

# Share of the ceiling's requests per second the thread's first page should reach (issue 3).
TARGET_FRAGMENT = 0.25
# Posting latency the issue aims for at the 99th percentile.
TARGET_POST_P99_MS = 100.0
# Upper bounds (ms) of the posting latency histogram's buckets; the last bucket is open.
LATENCY_BUCKETS_MS = (25, 50, 75, 100, 150, 200, 300, 500)
# Linux's SO_TIMESTAMPNS (and SCM_TIMESTAMPNS), which Python's socket module does not name: each read also
# says when the kernel received the data, so the time a response waited for this client is known.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("qq")
CACHED_PAGE_SECONDS = 300
THREAD_SIZE = 500
POSTERS = 20
WARM_UP = "warm-up"
_VOCABULARY = """
ferry harbour tram bus bridge council budget vote plan station river port night timetable fare ticket
bike bicycle crossing winter summer route crew captain pier island coast town city mayor minister
report data study price cost delay service schedule electric battery charge power grid shore noise
quiet busy early late morning evening weekend holiday crowd queue passenger driver worker union strike
good bad better worse fine great agree disagree think believe doubt wonder hope fear expect remember
"""
WORDS = _VOCABULARY.split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_COMMENTS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/newsreader_comments_bench"
        ),
        help="a PostgreSQL database the benchmark owns: dropped and recreated",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_COMMENTS_REDIS_URL", "redis://127.0.0.1:6379/14"),
        help="a Redis database the benchmark owns: emptied before each server configuration",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"], help="default sync")
    parser.add_argument("--threads", type=int, default=1, help="threads per gthread worker (default 1)")
    parser.add_argument("--concurrency", type=int, default=4, help="connections reading the thread (default 4)")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per reading round")
    parser.add_argument("--rounds", type=int, default=3, help="reading rounds, page and ceiling alternating")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before measuring")
    parser.add_argument("--posters", type=int, default=POSTERS, help="readers posting at once (default 20)")
    parser.add_argument("--post-seconds", type=float, default=10.0, help="measured seconds of posting (default 10)")
    parser.add_argument("--max-posts", type=int, default=20_000, help="stop posting after this many requests")
    parser.add_argument(
        "--only",
        choices=["reads", "posts"],
        help="measure only the thread's reads or only posting (default: both)",
    )
    return parser.parse_args()


# --- Seeding ---------------------------------------------------------------------------------


def setup_django(environment: dict[str, str], static_root: Path) -> None:
    os.environ.update(environment)
    sys.path.insert(0, str(_harness.ROOT))
    import django
    from django.conf import settings

    settings.STATIC_ROOT = static_root
    django.setup()


def comment_text(rng: random.Random) -> str:
    """One to four sentences; now and then emphasis, a link or a quote, as readers write them."""
    sentences = [
        " ".join(rng.choices(WORDS, k=rng.randint(6, 18))).capitalize() + "." for _ in range(rng.randint(1, 4))
    ]
    if rng.random() < 0.2:
        sentences[0] = f"*{sentences[0]}*"
    if rng.random() < 0.15:
        sentences.append(f"See https://news.example.org/{rng.choice(WORDS)}/{rng.randint(1, 999)}")
    if rng.random() < 0.1:
        sentences.insert(0, f"> {' '.join(rng.choices(WORDS, k=8))}\n")
    return " ".join(sentences)


def seed(*, posters: int, seed: int = 20261125) -> tuple[str, str, list[int], list[tuple[str, int]]]:
    """A story with a 500-comment thread: 100 top-level comments with replies up to four deep.

    Returns the story's slug and path, the ids of comments to reply to, and (session key, user id) of
    each poster. The posters are established readers (old accounts with published comments); the
    moderation rules all run, with rate limits sized so 20 busy posters are not refused.
    """
    from allauth.account.models import EmailAddress
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.cached_db import SessionStore
    from django.db import transaction
    from django.db.models import F
    from django.utils import timezone

    from comments.markup import fingerprint, render_comment
    from comments.models import Comment, ModerationRule
    from stories.models import Source, Story

    rng = random.Random(seed)
    User = get_user_model()
    now = timezone.now()
    with transaction.atomic():
        ModerationRule.objects.filter(kind="rate_limit").update(limit=1_000_000)
        ModerationRule.objects.filter(kind="duplicate").update(window_seconds=600)
        source = Source.objects.create(
            name="Bench Ledger", slug="bench-ledger", feed_url="https://bench-ledger.example.org/feed.xml"
        )
        story = Story.objects.create(
            source=source,
            title="Night ferries return to the fjord after ten years",
            dek="Two crossings a night from May. Fares stay as they are.",
            body_html="<p>" + " ".join(rng.choices(WORDS, k=600)) + "</p>",
            original_url="https://bench-ledger.example.org/night-ferries",
            status=Story.Status.PUBLISHED,
            published_at=now - timedelta(days=1),
        )
        joined = now - timedelta(days=400)
        readers = User.objects.bulk_create(
            User(username=f"reader{n}", email=f"reader{n}@example.org", date_joined=joined) for n in range(60)
        )
        EmailAddress.objects.bulk_create(
            EmailAddress(user=user, email=user.email, verified=True, primary=True) for user in readers
        )

        comments: list[Comment] = []
        tops: list[Comment] = []
        for number in range(THREAD_SIZE):
            text = comment_text(rng)
            parent = None
            if number >= 100:
                parent = rng.choice([c for c in comments[-60:] if c.depth < 4] or tops)
            comment = Comment(
                story=story,
                author=rng.choice(readers),
                parent=parent,
                root=(parent.root or parent) if parent else None,
                depth=parent.depth + 1 if parent else 0,
                body_source=text,
                body_html=render_comment(text),
                body_hash=fingerprint(text),
                created_at=now - timedelta(hours=20) + timedelta(seconds=number * 60),
            )
            comment.save()
            comments.append(comment)
            if parent is None:
                tops.append(comment)
            else:
                Comment.objects.filter(pk=comment.root_id).update(thread_reply_count=F("thread_reply_count") + 1)
        Story.objects.filter(pk=story.pk).update(comment_count=len(comments))

        sessions = []
        for reader in readers[:posters]:
            session = SessionStore()
            session[SESSION_KEY] = str(reader.pk)
            session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            session[HASH_SESSION_KEY] = reader.get_session_auth_hash()
            session.create()
            sessions.append((session.session_key, reader.pk))
    reply_targets = [c.pk for c in comments if c.depth < 3]
    return story.slug, story.get_absolute_url(), reply_targets, sessions


def prepare(args: argparse.Namespace) -> tuple[str, str, list[int], list[tuple[str, int]]]:
    from django.core.management import call_command
    from django.db import connections

    _harness.flush_redis_database(args.redis_url)
    _harness.recreate_postgres_database(args.database_url)
    call_command("migrate", "--noinput", verbosity=0)
    print(f"Seeding a story with {THREAD_SIZE} comments and {args.posters} posters…", flush=True)
    seeded = seed(posters=args.posters)
    with connections["default"].cursor() as cursor:
        cursor.execute("ANALYZE")
    call_command("collectstatic", "--noinput", verbosity=0)
    connections.close_all()
    return seeded


# --- Reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadMeasurement:
    label: str
    path: str
    page: _harness.LoadResult
    ceiling: _harness.LoadResult
    round_ratios: tuple[float, ...]
    target: float | None

    @property
    def ratio(self) -> float:
        return statistics.median(self.round_ratios)


def measure_reads(
    args: argparse.Namespace, server: _harness.Server, pages: dict[str, str], *, cached: bool
) -> list[ReadMeasurement]:
    measurements = []
    for label, (path, target) in pages.items():
        for _ in range(2):
            status, headers, body = _harness.http_get(server.port, path)
            if status != 200:
                raise SystemExit(f"{path} answered {status}:\n{server.log_tail()}")
        if cached != (headers.get("x-page-cache") == "hit"):
            raise SystemExit(f"{path}: page cache hit {headers.get('x-page-cache')!r}, expected cached={cached}")
        if "fragment" in label and body.count(b'<li class="comment') < 20:
            raise SystemExit(f"{path}: the fragment shows too few comments; the seed did not take.")
        ceiling_path = f"/__bench__/ceiling/{len(body)}/"
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
            label=f"{label:<26}",
        )
        measurements.append(
            ReadMeasurement(
                label=label,
                path=path,
                page=comparison.page,
                ceiling=comparison.ceiling,
                round_ratios=comparison.round_ratios,
                target=target,
            )
        )
    return measurements


# --- Posting ---------------------------------------------------------------------------------


@dataclass
class PostResult:
    sent: int
    answered: int
    answered_in_window: int
    failed: int
    refused: int
    seconds: float
    latencies_ns: list[int]
    keys: set[str]
    answered_keys: set[str]
    double_submits: int
    answers: list["Answer"] = field(default_factory=list)
    server_cpu_seconds: float = 0.0
    database_cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    machine_busy: float = 0.0  # CPU seconds, all CPUs, everything running
    machine_total: float = 0.0

    @property
    def per_second(self) -> float:
        return self.answered_in_window / self.seconds if self.seconds else 0.0

    @property
    def elsewhere_share(self) -> float:
        """Of the machine's CPU time, the share used outside this load generator, the workers and their
        database backends: other people's processes, but also Redis and the kernel's own work."""
        if not self.machine_total:
            return 0.0
        measured = self.client_cpu_seconds + self.server_cpu_seconds + self.database_cpu_seconds
        return max(0.0, self.machine_busy - measured) / self.machine_total

    def percentile_ms(self, fraction: float) -> float:
        return _rank_ms(sorted(self.latencies_ns), fraction)

    @property
    def client_cpu_share(self) -> float:
        """Of one CPU: how busy the load generator itself was."""
        return self.client_cpu_seconds / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Answer:
    """One post answered with 200: when it was sent (from the run's start), its latency, and how much of
    that the response spent in this client's socket before the client read it (0 when unknown)."""

    sent_at_ns: int
    latency_ns: int
    unread_ns: int
    kind: str  # "comment", "reply" or "repeat" (a form sent the second time)


class _Poster:
    """One reader's connection: its session, its next request, and the response being read."""

    __slots__ = (
        "arrived_wall_ns",
        "buffer",
        "cookie",
        "key",
        "kind",
        "number",
        "pending_key",
        "pending_repeat",
        "sent_ns",
        "sent_wall_ns",
        "sock",
        "user_id",
    )

    def __init__(self, number: int, session_key: str, user_id: int) -> None:
        csrf = uuid.uuid4().hex
        self.cookie = f"sessionid={session_key}; csrftoken={csrf}"
        self.number = number
        self.user_id = user_id
        self.sock: socket.socket | None = None
        self.buffer = bytearray()
        self.sent_ns = 0
        self.sent_wall_ns = 0
        self.arrived_wall_ns = 0
        self.key = ""
        self.kind = ""
        self.pending_repeat = b""
        self.pending_key = ""


def run_posts(
    *,
    port: int,
    slug: str,
    reply_targets: list[int],
    sessions: list[tuple[str, int]],
    seconds: float,
    max_posts: int,
    pause: float = 0.0,
    seed: int = 7,
    server_pids: Callable[[], list[int]] = list,
    database_pids: Callable[[], list[int]] = list,
    timestamps: bool = sys.platform == "linux",
) -> PostResult:
    """Each poster sends a comment, waits for the answer, pauses `pause` seconds, and sends the next.

    With no pause the server is saturated: throughput. With a pause the load is what many readers
    writing now and then make: latency without a queue of its own making. Posts go as htmx requests
    (what the page's form sends) and succeed with 200; half are replies. One in ten is sent a second
    time with the same form key right after its answer, as a double click would. Bounded by time and count.
    With `timestamps` (Linux), the kernel says when each response arrived, so the time it then waited for
    this process to read it is known.
    """
    rng = random.Random(seed)
    selector = selectors.DefaultSelector()
    posters = [_Poster(number, key, user_id) for number, (key, user_id) in enumerate(sessions)]
    result = PostResult(0, 0, 0, 0, 0, 0.0, [], set(), set(), 0)
    waiting: list[tuple[int, int]] = []  # (when to send, poster number), for posters pausing
    counter = 0

    def new_request(poster: _Poster) -> tuple[bytes, str, str]:
        nonlocal counter
        counter += 1
        key = str(uuid.uuid4())
        result.keys.add(key)
        text = f"bench post {seed}-{counter} by {poster.number}: {' '.join(rng.choices(WORDS, k=rng.randint(8, 30)))}"
        kind = "reply" if rng.random() < 0.5 else "comment"
        path = f"/comments/c/{rng.choice(reply_targets)}/reply/" if kind == "reply" else f"/comments/{slug}/post/"
        body = urlencode({"body": text, "idempotency_key": key}).encode()
        csrf = poster.cookie.rsplit("=", 1)[1]
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {_harness.HOST}\r\nUser-Agent: newsreader-bench\r\n"
            f"Cookie: {poster.cookie}\r\nX-CSRFToken: {csrf}\r\nHX-Request: true\r\nConnection: close\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        request = head.encode() + body
        if rng.random() < 0.1:
            poster.pending_repeat, poster.pending_key = request, key
            result.double_submits += 1
        return request, key, kind

    def send(poster: _Poster) -> None:
        if poster.pending_repeat:
            request, key, kind = poster.pending_repeat, poster.pending_key, "repeat"
            poster.pending_repeat, poster.pending_key = b"", ""
        else:
            request, key, kind = new_request(poster)
        poster.sock = socket.create_connection((_harness.HOST, port))
        poster.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if timestamps:
            poster.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        poster.sock.sendall(request)
        poster.sock.setblocking(False)
        poster.buffer.clear()
        poster.key = key
        poster.kind = kind
        poster.arrived_wall_ns = 0
        poster.sent_wall_ns = time.time_ns()
        poster.sent_ns = time.perf_counter_ns()
        selector.register(poster.sock, selectors.EVENT_READ, poster)
        result.sent += 1

    def receive(poster: _Poster) -> bytes:
        if not timestamps:
            return poster.sock.recv(1 << 18)
        chunk, ancillary, _, _ = poster.sock.recvmsg(1 << 18, socket.CMSG_SPACE(_TIMESPEC.size))
        for level, kind, data in ancillary:
            if chunk and level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = _TIMESPEC.unpack(data[: _TIMESPEC.size])
                poster.arrived_wall_ns = seconds * 1_000_000_000 + nanoseconds
        return chunk

    def answered(poster: _Poster) -> None:
        done = time.perf_counter_ns()
        selector.unregister(poster.sock)
        poster.sock.close()
        status = int(bytes(poster.buffer[9:12])) if len(poster.buffer) > 12 else 0
        if status == 200:
            result.answered += 1
            result.answered_in_window += done < stop_at
            result.answered_keys.add(poster.key)
            result.latencies_ns.append(done - poster.sent_ns)
            arrived = done
            if poster.arrived_wall_ns:
                arrived = poster.sent_ns + (poster.arrived_wall_ns - poster.sent_wall_ns)
            result.answers.append(
                Answer(poster.sent_ns - start, done - poster.sent_ns, max(0, done - arrived), poster.kind)
            )
        elif status in (409, 429):
            result.refused += 1
        else:
            result.failed += 1

    server_before = _harness.process_cpu_seconds(server_pids())
    database_before = _harness.process_cpu_seconds(database_pids())
    machine_before = _harness.machine_cpu_times()
    client_before = time.process_time()
    start = time.perf_counter_ns()
    stop_at = start + int(seconds * 1e9)
    for poster in posters:
        send(poster)
    while True:
        now = time.perf_counter_ns()
        if now >= stop_at or result.sent >= max_posts:
            break
        while waiting and waiting[0][0] <= now:
            send(posters[heapq.heappop(waiting)[1]])
        timeout = min(0.05, (waiting[0][0] - now) / 1e9) if waiting else 0.05
        for key, _ in selector.select(timeout=max(timeout, 0)):
            poster: _Poster = key.data
            try:
                chunk = receive(poster)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if chunk:
                poster.buffer += chunk
                continue
            # gunicorn's sync workers close the connection after each response: that is its end.
            answered(poster)
            if pause:
                heapq.heappush(waiting, (time.perf_counter_ns() + int(pause * 1e9), poster.number))
            else:
                send(poster)
    result.seconds = (min(time.perf_counter_ns(), stop_at) - start) / 1e9
    result.server_cpu_seconds = _harness.cpu_seconds_between(server_before, _harness.process_cpu_seconds(server_pids()))
    result.database_cpu_seconds = _harness.cpu_seconds_between(
        database_before, _harness.process_cpu_seconds(database_pids())
    )
    result.client_cpu_seconds = time.process_time() - client_before
    machine_after = _harness.machine_cpu_times()
    result.machine_busy = machine_after[0] - machine_before[0]
    result.machine_total = machine_after[1] - machine_before[1]
    # Let the requests in flight finish, so the database holds everything that was answered.
    deadline = time.monotonic() + 15
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.1):
            poster = key.data
            chunk = receive(poster)
            if chunk:
                poster.buffer += chunk
            else:
                answered(poster)
    selector.close()
    return result


def open_database_connections(args: argparse.Namespace, server: _harness.Server, slug: str) -> None:
    """Read the thread until every worker has opened its database connection, so that each backend's CPU is
    counted. Each read has a URL of its own: a page cache hit would answer without the database."""
    for attempt in range(10):
        for number in range(20):
            _harness.http_get(server.port, f"/comments/{slug}/thread/?opening={attempt}-{number}")
        if len(_harness.postgres_backend_pids(args.database_url)) >= args.workers:
            return
    print("  (not every worker opened a database connection: PostgreSQL's CPU is undercounted)", flush=True)


def measure_posts(
    args: argparse.Namespace, server: _harness.Server, slug: str, reply_targets: list[int], sessions
) -> dict[str, PostResult]:
    """After a warm-up (freshly started workers load templates, connect, and prepare statements on their first
    posts), saturation (throughput), then the same readers pausing so they offer half of it (latency)."""
    common = {
        "port": server.port,
        "slug": slug,
        "reply_targets": reply_targets,
        "sessions": sessions,
        "server_pids": server.worker_pids,
        "database_pids": lambda: _harness.postgres_backend_pids(args.database_url),
    }
    open_database_connections(args, server, slug)
    print(f"  posting: warming up for {args.warmup:g} s…", flush=True)
    warm_up = run_posts(**common, seconds=args.warmup, max_posts=args.max_posts, seed=0)
    print(f"  posting: {args.posters} readers, no pause…", flush=True)
    saturated = run_posts(**common, seconds=args.post_seconds, max_posts=args.max_posts, seed=1)
    pause = args.posters / max(saturated.per_second * 0.5, 1.0)
    print(f"  posting: {args.posters} readers, {pause:.2f} s pause after each answer…", flush=True)
    paced = run_posts(**common, seconds=args.post_seconds * 2, max_posts=args.max_posts, pause=pause, seed=2)
    return {
        WARM_UP: warm_up,
        "saturated (no pause)": saturated,
        f"half of that rate ({pause:.2f} s pauses)": paced,
    }


def check_posts(database_url: str, runs: list[PostResult]) -> tuple[int, int, int]:
    """(comments the posts stored, answered forms that left no comment, comments sharing a text)."""
    import psycopg

    with psycopg.connect(urlsplit(database_url)._replace(query="").geturl(), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT idempotency_key::text, body_source FROM comments_comment WHERE body_source LIKE 'bench post %%'"
        ).fetchall()
    stored_keys = {key for key, _ in rows}
    answered = set().union(*(run.answered_keys for run in runs))
    texts = [text for _, text in rows]
    return len(rows), len(answered - stored_keys), len(texts) - len(set(texts))


# --- Report ----------------------------------------------------------------------------------


def print_report(
    args, reads: list[ReadMeasurement], runs: dict[str, PostResult], checked: tuple[int, int, int]
) -> None:
    threads = f" x {args.threads} threads" if args.worker_class == "gthread" else ""
    print()
    print(
        f"gunicorn {args.worker_class}, {args.workers} workers{threads}, production settings, PostgreSQL, Redis; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}"
    )
    if reads:
        print_reads(reads)
    if runs:
        print_posts(args, runs, checked)


def print_reads(reads: list[ReadMeasurement]) -> None:
    header = f"{'page':<28} {'bytes':>7} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'ceiling':>8} {'ratio':>6}  target"
    print(header)
    print("-" * len(header))
    for m in reads:
        verdict = f"≥ {m.target:.2f} {'met' if m.ratio >= m.target else 'UNDER'}" if m.target else ""
        print(
            f"{m.label:<28} {m.page.response_bytes:>7} {m.page.per_second:>8.1f} {m.page.p50_ms:>7.2f}"
            f" {m.page.p99_ms:>7.2f} {m.ceiling.per_second:>8.1f} {m.ratio:>6.2f}  {verdict}"
        )


def print_posts(args, runs: dict[str, PostResult], checked: tuple[int, int, int]) -> None:
    print()
    print(f"posting, {args.posters} readers at once (htmx posts, half of them replies, one form in ten sent twice):")
    for label, run in runs.items():
        p99 = run.percentile_ms(0.99)
        if label == WARM_UP:
            print(
                f"  {label:<34} {run.answered} answered in {run.seconds:.1f} s, p99 {p99:.1f} ms (not measured),"
                f" {run.refused} refused, {run.failed} failed"
            )
            continue
        print(
            f"  {label:<34} {run.per_second:6.1f} comments/s  p50 {run.percentile_ms(0.5):6.1f} ms"
            f"  p99 {p99:6.1f} ms (target < {TARGET_POST_P99_MS:.0f}: {'met' if p99 < TARGET_POST_P99_MS else 'UNDER'})"
            f"  {run.sent} sent, {run.answered} answered, {run.refused} refused, {run.failed} failed"
        )
        if run.answered_in_window:
            print(
                f"  {'':<34} CPU per comment: workers {run.server_cpu_seconds * 1000 / run.answered_in_window:.2f} ms,"
                f" PostgreSQL {run.database_cpu_seconds * 1000 / run.answered_in_window:.2f} ms;"
                f" {run.elsewhere_share:.0%} of the machine's CPU went to other processes"
            )
        if run.answers:
            print_latency_detail(run)
    stored, lost, duplicated = checked
    forms = sum(len(run.keys) for run in runs.values())
    print(f"  {forms} distinct forms posted -> {stored} comments stored; lost {lost}, duplicated {duplicated}")


def print_latency_detail(run: PostResult) -> None:
    """Where the tail is: the latency histogram, how long answers waited for this client to read them, and
    when the slowest 1% were sent and what they were (a burst means a stall every post in flight shared)."""
    indent = " " * 36
    latencies = sorted(answer.latency_ns for answer in run.answers)
    unread = sorted(answer.unread_ns for answer in run.answers)
    counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for latency in latencies:
        counts[next((i for i, bound in enumerate(LATENCY_BUCKETS_MS) if latency <= bound * 1e6), -1)] += 1
    bounds = [f"≤{bound}" for bound in LATENCY_BUCKETS_MS] + [f">{LATENCY_BUCKETS_MS[-1]}"]
    print(f"{indent}ms: " + ", ".join(f"{bound} {count}" for bound, count in zip(bounds, counts, strict=True)))
    later = sorted(answer.latency_ns for answer in run.answers if answer.sent_at_ns >= 1_000_000_000)
    print(
        f"{indent}p90 {_rank_ms(latencies, 0.9):.1f} ms, p99.9 {_rank_ms(latencies, 0.999):.1f} ms,"
        f" max {latencies[-1] / 1e6:.1f} ms; sent after the first second: p50 {_rank_ms(later, 0.5):.1f} ms,"
        f" p99 {_rank_ms(later, 0.99):.1f} ms"
    )
    print(
        f"{indent}answers waited for this client to read them: p50 {_rank_ms(unread, 0.5):.2f} ms,"
        f" p99 {_rank_ms(unread, 0.99):.2f} ms; its CPU {run.client_cpu_share:.0%} of one"
    )
    slowest = sorted(run.answers, key=lambda answer: answer.latency_ns)[-max(1, len(run.answers) // 100) :]
    kinds = Counter(answer.kind for answer in slowest)
    # Tenths of a second in which the slowest were sent, with how many: adjacent tenths run together.
    tenths = Counter(answer.sent_at_ns // 100_000_000 for answer in slowest)
    spans: list[list[int]] = []
    for tenth in sorted(tenths):
        if spans and tenth == spans[-1][1] + 1:
            spans[-1][1:] = [tenth, spans[-1][2] + tenths[tenth]]
        else:
            spans.append([tenth, tenth, tenths[tenth]])
    sent = ", ".join(
        f"{first / 10:.1f}{f'-{last / 10 + 0.1:.1f}' if last > first else ''} s ({count})"
        for first, last, count in spans
    )
    print(
        f"{indent}slowest 1% ({len(slowest)}): {', '.join(f'{n} {kind}' for kind, n in kinds.most_common())};"
        f" sent at {sent}"
    )


def _rank_ms(ordered: list[int], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, int(fraction * len(ordered) + 0.999) - 1))] / 1e6


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    work_dir = Path(tempfile.mkdtemp(prefix="newsreader-comments-bench-"))
    try:

        def environment(page_cache_seconds: int) -> dict[str, str]:
            return _harness.production_environment(
                database_url=args.database_url,
                redis_url=args.redis_url,
                work_dir=work_dir,
                page_cache_seconds=page_cache_seconds,
            )

        setup_django(environment(0), work_dir / "static")
        slug, story_path, reply_targets, sessions = prepare(args)
        fragment = f"/comments/{slug}/thread/"
        reads: list[ReadMeasurement] = []
        runs: dict[str, PostResult] = {}
        # Reading first, on the seeded thread; then posting, on a server as production runs it (page cache on).
        configurations = [("reads", "rendered"), ("reads", "page cache"), ("posts", "")]
        for configuration, label in configurations:
            if args.only and configuration != args.only:
                continue
            cached = label != "rendered"
            _harness.flush_redis_database(args.redis_url)
            server = _harness.Server(
                app="bench.wsgi:application",
                environment=environment(CACHED_PAGE_SECONDS if cached else 0),
                log_path=work_dir / "gunicorn.log",
                workers=args.workers,
                worker_class=args.worker_class,
                threads=args.threads,
            )
            with server:
                if configuration == "reads":
                    pages = {
                        f"thread fragment, {label}": (fragment, None if cached else TARGET_FRAGMENT),
                        f"story page, {label}": (story_path, None),
                    }
                    reads += measure_reads(args, server, pages, cached=cached)
                else:
                    runs.update(measure_posts(args, server, slug, reply_targets, sessions))
            if "Traceback" in server.log_tail(400):
                print(f"The server logged errors:\n{server.log_tail()}")
        checked = check_posts(args.database_url, list(runs.values()))
        print_report(args, reads, runs, checked)
        return 1 if any(run.failed for run in runs.values()) or checked[1] or checked[2] else 0
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
