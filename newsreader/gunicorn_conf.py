"""gunicorn settings for production: `gunicorn -c python:newsreader.gunicorn_conf newsreader.wsgi`.

Options given on the command line or in GUNICORN_CMD_ARGS still apply; this file only adds the hook
that keeps /metrics right across worker restarts.
"""

import os

from prometheus_client import multiprocess


def child_exit(server, worker) -> None:
    """A worker exited: its live gauges leave PROMETHEUS_MULTIPROC_DIR (its counters stay, as they should)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
