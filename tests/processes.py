"""Real Celery processes of this project (a worker, beat) pointed at the test database and Redis."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

PROJECT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class CeleryProcess:
    """`celery worker` or `celery beat` in its own process group, started and stopped at will.

    `environment` adds to the test's own: the database and Redis of the test, debug on, loopback feeds
    allowed. Output goes to `log` (a file path), so a failing test can show what the process said.
    """

    def __init__(self, kind: str, *, log: Path, environment: dict[str, str] | None = None, args=()) -> None:
        self.kind = kind
        self.log = log
        self.environment = environment or {}
        self.args = list(args)
        self.process: subprocess.Popen | None = None

    def start(self) -> "CeleryProcess":
        env = {
            **os.environ,
            "DEBUG": "true",
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "FETCH_ALLOWED_NETWORKS": "127.0.0.1/32",
            **self.environment,
        }
        command = [sys.executable, "-m", "celery", "-A", "newsreader", self.kind, "--loglevel", "INFO", *self.args]
        if self.kind == "worker":
            command += ["--pool", "solo", "--without-mingle", "--without-gossip", "--without-heartbeat"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process dies mid-task, holding whatever it held."""
        if self.running:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, as a deploy does: a worker finishes the task in hand, then exits."""
        if self.running:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
