"""Faults: 50 local feeds imported and labelled by a real worker that is killed twice mid-import, with
Redis restarted (without persistence, so its queue is lost) in between.

It runs its own Redis on a free loopback port, its own PostgreSQL database, a Celery worker (prefork,
two processes) and beat with the shipped pipeline settings, and a feed server on 127.0.0.1. It prints
the entries stored once, duplicates, runs left running, and the seconds from the last fault until every
source is imported and every story is labelled and through the pipeline. Target: 0 lost, 0 duplicated,
all done within 180 s of the last fault.

    .venv/bin/python bench/faults.py [--sources 50] [--entries 20] [--fast]

`--fast` shortens leases, retries and the sweep to a few seconds (for trying it out); without it the
figures are those of a production deployment.
"""

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _harness import HOST, free_port, recreate_postgres_database  # noqa: E402

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/newsreader_bench_faults")
DEADLINE_SECONDS = 600
# Publishers: the feeds are spread over this many hosts (127.0.0.10, .11, …), as on a real site, so the
# per-host limit on parallel imports shapes the run as it would in production.
HOSTS = 10
FEED_DELAY_SECONDS = 0.5


def feed(source: int, entries: int) -> bytes:
    now = datetime.now(UTC)
    items = "".join(
        f"<item><title>Story {n} from feed {source}: the harbour council meets</title>"
        f"<link>https://feeds.example.org/{source}/{n}</link><guid>feed-{source}-{n}</guid>"
        f"<pubDate>{format_datetime(now - timedelta(minutes=n), usegmt=True)}</pubDate>"
        f"<description>The council of town {source} voted on ferries, schools and the budget, item {n}."
        "</description></item>"
        for n in range(entries)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {source}</title>{items}</channel></rss>'.encode()
    )


class FeedServer:
    """Feeds /feed-N.xml on a loopback address, each answered after a short delay so kills land mid-import."""

    def __init__(self, address: str, entries: int) -> None:
        self.address = address
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                number = int(self.path.removeprefix("/feed-").removesuffix(".xml"))
                time.sleep(FEED_DELAY_SECONDS)
                body = feed(number, entries)
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError):  # the worker reading it was killed
                    self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer((address, 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


class Process:
    """A child process in its own group, killed whole."""

    def __init__(self, command: list[str], *, env: dict[str, str], log: Path) -> None:
        self.command, self.env, self.log = command, env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self, signal_number: int = 9) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal_number)
            self.process.wait(timeout=60)


def wait_for_redis(port: int) -> None:
    import redis

    client = redis.Redis(host=HOST, port=port)
    for _ in range(100):
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"redis-server on port {port} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--entries", type=int, default=20)
    parser.add_argument("--fast", action="store_true", help="leases, retries and sweeps of a few seconds")
    options = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the worker, beat and Redis on the way out
    redis_server = shutil.which("redis-server")
    if not redis_server:
        raise SystemExit("bench/faults.py needs redis-server on PATH (Debian: apt-get install redis-server).")

    work = Path(tempfile.mkdtemp(prefix="newsreader-faults-"))
    redis_port = free_port()
    redis_url = f"redis://{HOST}:{redis_port}/0"
    recreate_postgres_database(DATABASE_URL)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)},
        "DJANGO_SETTINGS_MODULE": "newsreader.settings",
        "DEBUG": "true",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": redis_url,
        "NEWSREADER_VAR_DIR": str(work / "var"),
        "FETCH_ALLOWED_NETWORKS": "127.0.0.0/8",
        "LOG_LEVEL": "WARNING",
        "IMPORT_MAX_PARALLEL_PER_HOST": "2",
    }
    if options.fast:
        env.update({"PIPELINE_LEASE_SECONDS": "6", "PIPELINE_RETRY_SECONDS": "3", "PIPELINE_SWEEP_SECONDS": "2"})
    os.environ.update(env)
    redis_command = [redis_server, "--port", str(redis_port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    redis_process = Process(redis_command, env=env, log=work / "redis.log")
    celery = [sys.executable, "-m", "celery", "-A", "newsreader"]
    worker = Process(
        [*celery, "worker", "--concurrency", "2", "--loglevel", "WARNING"], env=env, log=work / "worker.log"
    )
    beat = Process(
        [*celery, "beat", "--loglevel", "WARNING", "-s", str(work / "beat-schedule")], env=env, log=work / "beat.log"
    )
    servers = [FeedServer(f"127.0.0.{10 + n}", options.entries) for n in range(HOSTS)]
    try:
        redis_process.start()
        wait_for_redis(redis_port)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)

        import django

        django.setup()
        from stories import pipeline
        from stories.models import ImportRun, Source, Story

        sources = []
        for n in range(options.sources):
            server = servers[n % HOSTS]
            feed_url = f"http://{server.address}:{server.port}/feed-{n}.xml"
            sources.append(Source.objects.create(name=f"Feed {n}", slug=f"feed-{n}", feed_url=feed_url))
        worker.start()
        beat.start()
        for source in sources:
            pipeline.request_import(source=source)
        started = time.monotonic()

        def fetches() -> int:
            return sum(server.requests for server in servers)

        def wait_for_fetches(count: int) -> None:
            while fetches() < count and time.monotonic() - started < DEADLINE_SECONDS:
                time.sleep(0.1)

        wait_for_fetches(3)
        worker.kill()
        print(f"{time.monotonic() - started:6.1f} s  worker killed (SIGKILL) mid-import")
        worker.start()
        wait_for_fetches(fetches() + 4)
        redis_process.kill()
        redis_process.start()
        wait_for_redis(redis_port)
        print(f"{time.monotonic() - started:6.1f} s  Redis restarted without persistence (its queue is lost)")
        wait_for_fetches(fetches() + 4)
        worker.kill()
        print(f"{time.monotonic() - started:6.1f} s  worker killed (SIGKILL) mid-import")
        worker.start()
        last_fault = time.monotonic()

        expected = options.sources * options.entries
        while time.monotonic() - started < DEADLINE_SECONDS:
            imported = ImportRun.objects.filter(outcome=ImportRun.Outcome.IMPORTED).values("source").distinct().count()
            stored = Story.objects.count()
            waiting = Story.objects.in_pipeline().count()
            if imported == options.sources and stored >= expected and not waiting:
                break
            time.sleep(1)
        recovered = time.monotonic() - last_fault
        stored = Story.objects.count()
        distinct = Story.objects.values("source", "guid").distinct().count()
        labelled = Story.objects.filter(ai_labelled=True).count()
        print()
        print(f"sources imported        {imported} / {options.sources}")
        print(f"entries stored once     {distinct} / {expected}  (lost: {expected - distinct})")
        print(f"duplicates              {stored - distinct}")
        print(f"stories labelled        {labelled} / {stored}")
        print(f"stories still waiting   {Story.objects.in_pipeline().count()}")
        print(f"runs left running       {ImportRun.objects.running().count()}")
        print(f"runs interrupted        {ImportRun.objects.filter(outcome=ImportRun.Outcome.INTERRUPTED).count()}")
        print(f"done after last fault   {recovered:.0f} s  (target: within 180 s)")
    finally:
        worker.kill()
        beat.kill()
        redis_process.kill()
        for server in servers:
            server.httpd.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
