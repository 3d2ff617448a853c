"""What the benchmarks share: the app under gunicorn with production settings, and a load generator.

Everything runs on 127.0.0.1 and stops by itself. The load generator is one process speaking raw
HTTP/1.1 over a fixed number of connections (closed loop: each connection sends its next request
when the previous response is in, and reconnects when the server closes), cheap enough per request
that on a small machine the server, not the client, is what gets measured; it reports its own CPU
use, and that of the server's workers and database backends, so that can be checked.
"""

import math
import os
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _database_name_and_admin_url(database_url: str) -> tuple[str, str]:
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if parts.scheme not in ("postgres", "postgresql") or not name:
        raise SystemExit(f"Benchmarks need a PostgreSQL database URL, got {database_url!r}.")
    return name, parts._replace(path="/postgres", query="").geturl()


def ensure_postgres_database(database_url: str) -> None:
    """Create the database named in `database_url` when it does not exist yet."""
    import psycopg
    from psycopg import sql

    name, admin_url = _database_name_and_admin_url(database_url)
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def recreate_postgres_database(database_url: str) -> None:
    """Drop the benchmark's own database and create it empty, so migrations run from the start."""
    import psycopg
    from psycopg import sql

    name, admin_url = _database_name_and_admin_url(database_url)
    if "bench" not in name:
        raise SystemExit(f"Refusing to drop {name!r}: a benchmark database's name contains 'bench'.")
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def postgres_backend_pids(database_url: str) -> list[int]:
    """The server processes of the connections open to this database (the benchmark server's own)."""
    import psycopg

    # Django options in the URL's query string (server_side_binding=…) are not libpq's.
    with psycopg.connect(urlsplit(database_url)._replace(query="").geturl(), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [pid for (pid,) in rows]


def flush_redis_database(redis_url: str) -> None:
    """Empty the benchmark's own Redis database, so no page, counter or mark from a past run is reused."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    finally:
        client.close()


def production_environment(
    *,
    database_url: str,
    redis_url: str,
    work_dir: Path,
    page_cache_seconds: int,
) -> dict[str, str]:
    """The environment of a production deployment, reachable over plain HTTP on 127.0.0.1."""
    environment = {key: value for key, value in os.environ.items() if key not in ("DEBUG", "DJANGO_SETTINGS_MODULE")}
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "newsreader.settings",
            "DEBUG": "false",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": HOST,
            # No TLS terminator in front of a loopback benchmark: without this every request is a redirect.
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": "newsreader-bench",
            "NEWSREADER_VAR_DIR": str(work_dir / "var"),
            "MEDIA_ROOT": str(work_dir / "media"),
            "BENCH_STATIC_ROOT": str(work_dir / "static"),
            "VISITOR_PAGE_CACHE_SECONDS": str(page_cache_seconds),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return environment


def http_get(port: int, path: str, *, timeout: float = 10.0, cookie: str = "") -> tuple[int, dict[str, str], bytes]:
    """One plain GET, for checks before and after a measurement (not for load); `cookie`: a Cookie header."""
    headers = {"Host": HOST, **({"Cookie": cookie} if cookie else {})}
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


class Server:
    """A gunicorn serving `app` on a free loopback port, as a context manager that always stops it."""

    def __init__(
        self,
        *,
        app: str,
        environment: dict[str, str],
        log_path: Path,
        workers: int,
        worker_class: str,
        threads: int,
        ready_path: str = "/robots.txt",
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.ready_path = ready_path
        self.command = [
            sys.executable,
            "-m",
            "gunicorn",
            app,
            "--chdir",
            str(ROOT),
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(workers),
            "--worker-class",
            worker_class,
            "--threads",
            str(threads),
            "--log-level",
            "warning",
        ]
        self.environment = environment
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Server":
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        try:
            self._wait_until_ready(timeout=60)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _wait_until_ready(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                status, _, _ = http_get(self.port, self.ready_path, timeout=2)
            except OSError:
                status = 0
            if status == 200:
                return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer {self.ready_path} within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def worker_pids(self) -> list[int]:
        """The worker processes (children of the gunicorn master), read from /proc; empty elsewhere."""
        if self.process is None:
            return []
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in children.split()]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # gunicorn runs in its own session: the whole group (master and workers) goes together.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def process_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User plus system CPU time so far of each process still running (Linux /proc; empty elsewhere)."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return seconds


def cpu_seconds_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU time used between two readings by the processes in both (one that exited drops out)."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def machine_cpu_times() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all CPUs, to show how loaded it was."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    except OSError:
        return 0.0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / ticks, sum(values) / ticks


@dataclass(frozen=True)
class LoadResult:
    """What one measurement saw. A latency runs from sending a request to reading its last byte."""

    requests: int
    errors: int
    seconds: float
    response_bytes: int
    latencies_ns: tuple[int, ...]  # sorted
    client_cpu_seconds: float
    server_cpu_seconds: float
    database_cpu_seconds: float
    machine_busy: float  # CPU seconds, all CPUs, everything running
    machine_total: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        return _percentile(self.latencies_ns, 0.50)

    @property
    def p99_ms(self) -> float:
        return _percentile(self.latencies_ns, 0.99)

    @property
    def client_cpu_share(self) -> float:
        """Of one CPU: how busy the load generator itself was."""
        return self.client_cpu_seconds / self.seconds if self.seconds else 0.0

    @property
    def server_cpu_ms_per_request(self) -> float:
        """CPU time of the server's workers per response."""
        return self.server_cpu_seconds * 1000 / self.requests if self.requests else 0.0

    @property
    def database_cpu_ms_per_request(self) -> float:
        """CPU time of the server's PostgreSQL backends per response."""
        return self.database_cpu_seconds * 1000 / self.requests if self.requests else 0.0

    @property
    def elsewhere_share(self) -> float:
        """Of the machine's CPU time, the share used outside the client, the workers and their database
        backends: other people's processes, but also Redis and the kernel's own work."""
        if not self.machine_total:
            return 0.0
        measured = self.client_cpu_seconds + self.server_cpu_seconds + self.database_cpu_seconds
        return max(0.0, self.machine_busy - measured) / self.machine_total


def combine(results: list[LoadResult]) -> LoadResult:
    """Several measurements of the same scenario as one."""
    return LoadResult(
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
        seconds=sum(r.seconds for r in results),
        response_bytes=max(r.response_bytes for r in results),
        latencies_ns=tuple(sorted(latency for r in results for latency in r.latencies_ns)),
        client_cpu_seconds=sum(r.client_cpu_seconds for r in results),
        server_cpu_seconds=sum(r.server_cpu_seconds for r in results),
        database_cpu_seconds=sum(r.database_cpu_seconds for r in results),
        machine_busy=sum(r.machine_busy for r in results),
        machine_total=sum(r.machine_total for r in results),
    )


def _percentile(ordered: tuple[int, ...], fraction: float) -> float:
    """Nearest-rank percentile of sorted nanosecond values, in milliseconds."""
    if not ordered:
        return 0.0
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1] / 1e6


def read_head(connection) -> bool:
    """Parse the response head in `connection.buffer` once it is whole, setting the connection's
    `header_end`, `status`, `length` (-1 without Content-Length) and `close_after`; whether it was whole."""
    end = connection.buffer.find(b"\r\n\r\n")
    if end < 0:
        return False
    connection.header_end = end + 4
    head = bytes(connection.buffer[: connection.header_end]).lower()
    connection.status = int(head[9:12])
    marker = head.find(b"\r\ncontent-length:")
    connection.length = int(head[marker + 17 : head.index(b"\r\n", marker + 2)]) if marker >= 0 else -1
    connection.close_after = b"\r\nconnection: close" in head
    return True


class _Connection:
    """One client connection and the response it is reading."""

    __slots__ = ("buffer", "close_after", "header_end", "length", "sent_ns", "sock", "status")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.sent_ns = 0
        self.header_end = -1
        self.length = -1
        self.status = 0
        self.close_after = False


def run_load(
    *,
    port: int,
    path: str,
    concurrency: int,
    seconds: float,
    warmup_seconds: float,
    server_pids: Callable[[], list[int]] = list,
    database_pids: Callable[[], list[int]] = list,
    max_requests: int = 2_000_000,
    cookie: str = "",
) -> LoadResult:
    """Keep `concurrency` requests for `path` in flight for warm-up plus `seconds`, then stop.

    Responses completed inside the measured window count; a status other than 200 or a connection
    closed mid-response is an error. The process ids whose CPU time is reported are read when the
    window opens, after the warm-up has opened every worker's database connection. Bounded by time
    and by `max_requests`. With `cookie`, every request carries it (a signed-in reader's session, say).
    """
    cookie_header = f"Cookie: {cookie}\r\n" if cookie else ""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: newsreader-bench\r\nAccept: text/html\r\n"
        f"{cookie_header}\r\n"
    )
    request_bytes = request.encode()
    selector = selectors.DefaultSelector()
    latencies: list[int] = []
    errors = 0
    response_bytes = 0
    sent = 0

    def connect() -> _Connection:
        sock = socket.create_connection((HOST, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        connection = _Connection(sock)
        selector.register(sock, selectors.EVENT_READ, connection)
        return connection

    def send(connection: _Connection) -> None:
        nonlocal sent
        connection.buffer.clear()
        connection.header_end = connection.length = -1
        connection.close_after = False
        connection.sent_ns = time.perf_counter_ns()
        connection.sock.send(request_bytes)  # a few dozen bytes into an empty socket buffer: always whole
        sent += 1

    def reconnect(connection: _Connection) -> _Connection:
        selector.unregister(connection.sock)
        connection.sock.close()
        return connect()

    open_at = time.perf_counter_ns() + int(warmup_seconds * 1e9)
    window_start = stop_at = 0
    cpu_before = 0.0
    server_before: dict[int, float] = {}
    database_before: dict[int, float] = {}
    machine_before = (0.0, 0.0)
    watched_server: list[int] = []
    watched_database: list[int] = []

    for _ in range(concurrency):
        send(connect())

    while True:
        now = time.perf_counter_ns()
        if not window_start and now >= open_at:
            watched_server, watched_database = server_pids(), database_pids()
            cpu_before = time.process_time()
            server_before = process_cpu_seconds(watched_server)
            database_before = process_cpu_seconds(watched_database)
            machine_before = machine_cpu_times()
            window_start = time.perf_counter_ns()
            stop_at = window_start + int(seconds * 1e9)
        if (window_start and now >= stop_at) or sent >= max_requests:
            break
        for key, _ in selector.select(timeout=0.05):
            connection: _Connection = key.data
            try:
                chunk = connection.sock.recv(1 << 18)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                # Closed before the response was whole: an error, and the request goes out again.
                if window_start:
                    errors += 1
                send(reconnect(connection))
                continue
            connection.buffer += chunk
            if connection.header_end < 0:
                if not read_head(connection):
                    continue
                if connection.length < 0:
                    raise RuntimeError(f"{path}: response without Content-Length; the client cannot frame it")
            if len(connection.buffer) < connection.header_end + connection.length:
                continue
            done = time.perf_counter_ns()
            if window_start and done < stop_at:
                if connection.status == 200:
                    latencies.append(done - connection.sent_ns)
                    response_bytes = connection.length
                else:
                    errors += 1
            if connection.close_after:
                connection = reconnect(connection)
            send(connection)

    end = time.perf_counter_ns()
    cpu_after = time.process_time()
    server_after = process_cpu_seconds(watched_server)
    database_after = process_cpu_seconds(watched_database)
    machine_after = machine_cpu_times()
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    selector.close()

    window = (min(end, stop_at) - window_start) / 1e9 if window_start else 0.0
    return LoadResult(
        requests=len(latencies),
        errors=errors,
        seconds=window,
        response_bytes=response_bytes,
        latencies_ns=tuple(sorted(latencies)),
        client_cpu_seconds=cpu_after - cpu_before if window_start else 0.0,
        server_cpu_seconds=cpu_seconds_between(server_before, server_after),
        database_cpu_seconds=cpu_seconds_between(database_before, database_after),
        machine_busy=machine_after[0] - machine_before[0],
        machine_total=machine_after[1] - machine_before[1],
    )


@dataclass(frozen=True)
class Comparison:
    """A page and its ceiling measured in alternating rounds; `round_ratios` are page/ceiling per round."""

    page: "LoadResult"
    ceiling: "LoadResult"
    round_ratios: tuple[float, ...]


def compare_with_ceiling(
    *,
    port: int,
    path: str,
    ceiling_path: str,
    rounds: int,
    concurrency: int,
    seconds: float,
    warmup_seconds: float,
    server_pids,
    database_pids,
    label: str,
    cookie: str = "",
) -> Comparison:
    """Measure `path` and `ceiling_path` on the same server in `rounds` rounds, alternating which goes
    first so a trend in the background load favours neither, printing a line per measurement."""
    results: dict[str, list[LoadResult]] = {"page": [], "ceiling": []}
    for round_number in range(rounds):
        order = [("page", path), ("ceiling", ceiling_path)]
        for kind, target_path in order if round_number % 2 == 0 else order[::-1]:
            result = run_load(
                port=port,
                path=target_path,
                concurrency=concurrency,
                seconds=seconds,
                warmup_seconds=warmup_seconds if round_number == 0 else min(warmup_seconds, 0.5),
                server_pids=server_pids,
                database_pids=database_pids,
                cookie=cookie,
            )
            results[kind].append(result)
            print(
                f"  {label} {kind:<8} {result.per_second:8.1f} req/s  p50 {result.p50_ms:6.2f} ms"
                f"  p99 {result.p99_ms:6.2f} ms  errors {result.errors}  client CPU {result.client_cpu_share:4.0%}"
                f"  CPU/req: workers {result.server_cpu_ms_per_request:5.2f} ms,"
                f" PostgreSQL {result.database_cpu_ms_per_request:5.2f} ms"
                f"  elsewhere {result.elsewhere_share:4.0%} of the machine's CPU",
                flush=True,
            )
    ratios = tuple(
        page.per_second / ceiling.per_second if ceiling.per_second else 0.0
        for page, ceiling in zip(results["page"], results["ceiling"], strict=True)
    )
    return Comparison(page=combine(results["page"]), ceiling=combine(results["ceiling"]), round_ratios=ratios)
