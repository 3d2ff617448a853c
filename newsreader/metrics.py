"""The site's Prometheus metrics, defined once here and counted where things happen.

This module imports nothing of the apps, so any of them may count something. Values live in the
process, or with PROMETHEUS_MULTIPROC_DIR set (production: several gunicorn and Celery processes) in
files there that a scrape of /metrics (`newsreader.observability`) sums over every process.
"""

from prometheus_client import Counter, Histogram

REQUEST_DURATION = Histogram(
    "newsreader_http_request_duration_seconds",
    "Time from a request reaching the site's middleware to its response, by view and status code.",
    ["view", "status"],
)
DEPENDENCY_ERRORS = Counter(
    "newsreader_dependency_errors",
    "Redis and database errors that ended a request or a Celery task.",
    ["dependency", "origin"],
)

COMMENTS = Counter(
    "newsreader_comments",
    "What became of comments: posted (published at once), held for a moderator, rejected, refused "
    "(rate limit, duplicate, not allowed), approved or removed by a moderator, deleted by their author.",
    ["outcome"],
)
REPORTS = Counter("newsreader_reports", "Readers' reports of a comment or of a story's labels.", ["kind"])

IMPORTS = Counter("newsreader_imports", "Finished imports of a source, by outcome.", ["outcome"])
ENTRIES_IMPORTED = Counter("newsreader_entries_imported", "New stories imported from feeds.")
PIPELINE_STEP_DURATION = Histogram(
    "newsreader_pipeline_step_duration_seconds",
    "Time a story's pipeline step took, by step and outcome.",
    ["step", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
LABELLING_DURATION = Histogram(
    "newsreader_labelling_duration_seconds",
    "Time labelling a story took, and whether the configured labeller failed and another one answered.",
    ["fell_back"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
IMAGE_FAILURES = Counter(
    "newsreader_image_failures",
    "Failed image searches at a provider, and picture candidates that could not be downloaded, checked or stored.",
    ["stage"],
)
PAGE_CACHE_LOOKUPS = Counter(
    "newsreader_page_cache_lookups",
    "Requests for a page every reader shares (visitors' and signed-in readers'): a hit, a miss, or the cache "
    "unavailable.",
    ["result"],
)

TASK_DURATION = Histogram(
    "newsreader_celery_task_duration_seconds",
    "Time a Celery task ran, by task and final state.",
    ["task", "state"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
TASK_FAILURES = Counter("newsreader_celery_task_failures", "Celery tasks that raised, by task.", ["task"])
