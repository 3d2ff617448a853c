"""Newsreader's one settings module, configured from the environment.

Every deployment knob is an environment variable (see README, "Configuration"). Unset, the
embedded defaults run everything on one machine with nothing installed: SQLite, an in-memory
cache and a Celery broker kept in files. With DATABASE_URL and REDIS_URL the same code runs on
PostgreSQL and Redis.
"""

from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from newsreader.error_reporting import init_sentry

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("NEWSREADER_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable to a long random "
            "string (for example: python -c 'import secrets; print(secrets.token_urlsafe(50))'), "
            "or set DEBUG=true for local development."
        )
    SECRET_KEY = "insecure-development-key-only-used-when-DEBUG-is-true"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.sitemaps",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.google",
    "django_htmx",
    "newsreader",
    "stories",
    "comments",
    "follows",
]

MIDDLEWARE = [
    # First, so its request id, timing and access log line cover everything below, page cache hits included.
    "newsreader.observability.RequestObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "newsreader.health.HealthCheckMiddleware",
    "newsreader.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "newsreader.middleware.ServiceUnavailableMiddleware",
    "newsreader.middleware.InvalidTextMiddleware",
    "stories.pagecache.VisitorPageCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Django's, with the signed-in reader's account from the cache.
    "newsreader.authentication.AuthenticationMiddleware",
    "newsreader.middleware.PrivatePagesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Below authentication and messages: signed-in readers get the visitors' cached pages, with their own
    # parts filled in.
    "stories.pagecache.ReaderPageCacheMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so it sees a view's exception before any middleware above answers it.
    "newsreader.observability.DependencyErrorMiddleware",
]

ROOT_URLCONF = "newsreader.urls"
WSGI_APPLICATION = "newsreader.wsgi.application"
SITE_ID = 1

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "newsreader.context_processors.site",
            ],
        },
    },
]

# --- Data stores -----------------------------------------------------------------------------

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'newsreader.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A web server, a worker and beat share the file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    VAR_DIR.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
# Redis answers in well under a millisecond: a web request waits at most this long for it, then carries on
# without it (newsreader/cache.py), and the process leaves Redis alone for the pause before trying again.
REDIS_CONNECT_TIMEOUT_SECONDS = env.float("REDIS_CONNECT_TIMEOUT_SECONDS", default=0.25)
REDIS_TIMEOUT_SECONDS = env.float("REDIS_TIMEOUT_SECONDS", default=0.5)
REDIS_OUTAGE_PAUSE_SECONDS = env.float("REDIS_OUTAGE_PAUSE_SECONDS", default=5.0)

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "newsreader.cache.ReusingRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="newsreader"),
            "TIMEOUT": 300,
            "OPTIONS": {
                "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_TIMEOUT_SECONDS,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "newsreader"}}

SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# --- Celery ----------------------------------------------------------------------------------

# Longest a task may run; the broker's visibility timeout must be longer, or a slow task is
# redelivered to a second worker while the first is still on it.
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=15 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - min(60, CELERY_TASK_TIME_LIMIT // 10)
_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=CELERY_TASK_TIME_LIMIT * 2)
if _VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("CELERY_VISIBILITY_TIMEOUT must be longer than CELERY_TASK_TIME_LIMIT.")

if REDIS_URL:
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _VISIBILITY_TIMEOUT}
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": _VISIBILITY_TIMEOUT}
else:
    # Kombu's filesystem transport: a real worker process consumes real messages, no server.
    _BROKER_DIR = VAR_DIR / "broker"
    for _folder in ("queue", "processed", "control"):
        (_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
        "visibility_timeout": _VISIBILITY_TIMEOUT,
    }
# Queueing must not hang a request or a task while the broker is away: the database records what is
# due, and the pipeline sweep queues it again once the broker is back.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# How often beat runs the pipeline sweep (stories/pipeline.py), which queues any work the queue lost.
PIPELINE_SWEEP_SECONDS = env.float("PIPELINE_SWEEP_SECONDS", default=60.0)
CELERY_BEAT_SCHEDULE = {
    "flush-story-views": {"task": "stories.tasks.flush_story_views", "schedule": 60.0},
    "sweep-pipeline": {"task": "stories.tasks.sweep_pipeline", "schedule": PIPELINE_SWEEP_SECONDS},
    "sweep-reply-notifications": {
        "task": "comments.tasks.sweep_reply_notifications",
        "schedule": PIPELINE_SWEEP_SECONDS,
    },
    "refit-labeller-nightly": {
        "task": "stories.tasks.refit_labeller_task",
        "schedule": crontab(hour=3, minute=30),
        "kwargs": {"trigger": "nightly"},
    },
    "send-due-digests": {"task": "follows.tasks.send_due_digests_task", "schedule": crontab(minute=0)},
}

# --- Accounts (django-allauth) ---------------------------------------------------------------

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_ADAPTER = "newsreader.accounts.AccountAdapter"
ACCOUNT_FORMS = {"signup": "newsreader.accounts.SignupForm"}
ACCOUNT_LOGIN_METHODS = {"email"}
# The username is the public name shown on comments; readers log in with their email.
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    # Per client address only: a limit per email (allauth's default "5/5m/key") would let anyone lock a
    # reader out by failing to log in with their email. Over the limit, AccountAdapter answers 429.
    "login_failed": "5/5m/ip,20/h/ip",
    "signup": "20/m/ip",
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
    "manage_email": "10/m/user",
}
SOCIALACCOUNT_EMAIL_VERIFICATION = "mandatory"
SOCIALACCOUNT_QUERY_EMAIL = True
SOCIALACCOUNT_FORMS = {"signup": "newsreader.accounts.SocialSignupForm"}

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Newsreader <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Internationalisation and static files ---------------------------------------------------

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security --------------------------------------------------------------------------------

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe the health checks over plain HTTP (newsreader/health.py).
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz)$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
X_FRAME_OPTIONS = "DENY"
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Reverse proxies whose X-Forwarded-For is believed (newsreader/clientaddr.py): networks in CIDR, e.g.
# "127.0.0.1/32,10.0.0.0/8", and/or how many proxies stand in front of the site. Neither: REMOTE_ADDR.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default=(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'self'; object-src 'none'"
    ),
)

# --- Newsreader ------------------------------------------------------------------------------

SITE_NAME = env.str("SITE_NAME", default="Newsreader")
# The host (and port, if not the default) readers use; migrate writes it and SITE_NAME into the Sites row
# SITE_ID, which mails, feeds and the sitemap name. Default: the first ALLOWED_HOSTS entry that is not a
# wildcard; in DEBUG, the address `make run` serves.
SITE_DOMAIN = env.str(
    "SITE_DOMAIN",
    default="127.0.0.1:8000"
    if DEBUG
    else next((host for host in ALLOWED_HOSTS if host != "*" and not host.startswith(".")), ""),
)
STORIES_PER_PAGE = env.int("STORIES_PER_PAGE", default=20)
# Whole rendered pages kept for visitors (signed-out readers); 0 turns the page cache off.
VISITOR_PAGE_CACHE_SECONDS = env.int("VISITOR_PAGE_CACHE_SECONDS", default=60)
# A cached list page is kept at most this long, so its comment and view counts lag by no more (stories.pagecache).
LIST_PAGE_CACHE_SECONDS = env.int("LIST_PAGE_CACHE_SECONDS", default=60)
# Pages each web process keeps copies of (stories.localpages), so a visitor's hit needs no round trip to
# Redis; 0 keeps none. About 30 KB a page.
PAGE_COPIES_PER_PROCESS = env.int("PAGE_COPIES_PER_PROCESS", default=500)
# Secret salt for the daily hash that counts a visitor's view once without storing the address.
VIEW_COUNT_SALT = env.str("VIEW_COUNT_SALT", default=SECRET_KEY)

# "text" (the default) or "json": one JSON object a line, with the request's or task's ids (newsreader/logs.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f'LOG_FORMAT must be "text" or "json", not {LOG_FORMAT!r}.')
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "newsreader.logs.JsonFormatter"},
    },
    "filters": {"context": {"()": "newsreader.logs.ContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # trafilatura warns about every page it finds hard to read; the import run records what matters.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "trafilatura": {"level": "ERROR"}},
}

# --- Metrics and error reporting -------------------------------------------------------------
# /metrics answers requests bearing METRICS_TOKEN ("Authorization: Bearer …") and/or coming from
# METRICS_ALLOWED_NETWORKS (CIDR); with neither set, only this machine. PROMETHEUS_MULTIPROC_DIR, read by
# prometheus-client itself, makes the values of all web and worker processes add up (see README).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])
# Exceptions and logged errors go to Sentry when SENTRY_DSN is set; SENTRY_RELEASE defaults to the git commit.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_RELEASE = env.str("SENTRY_RELEASE", default="")
if SENTRY_DSN:
    init_sentry(dsn=SENTRY_DSN, release=SENTRY_RELEASE or None)

# --- Outbound fetching -----------------------------------------------------------------------
# Every outbound request (feeds, article pages, images, provider APIs) goes through
# stories/importing/fetch.py, which enforces these.

FETCH_USER_AGENT = env.str(
    "FETCH_USER_AGENT",
    default="Newsreader/0.1 (+https://github.com/newsreader/newsreader; self-hosted news reader)",
)
# Imports fetching from one host at the same time, across all workers (leases in the database).
IMPORT_MAX_PARALLEL_PER_HOST = env.int("IMPORT_MAX_PARALLEL_PER_HOST", default=2)
# Hosts and networks (CIDR) that may be fetched although they are not public, e.g.
# "127.0.0.1/32,feeds.internal" in development. Empty in production: only public addresses.
FETCH_ALLOWED_NETWORKS = env.list("FETCH_ALLOWED_NETWORKS", default=[])
FETCH_CONNECT_TIMEOUT_SECONDS = env.float("FETCH_CONNECT_TIMEOUT_SECONDS", default=10.0)
# The whole fetch, redirects and a slowly dripping body included, ends by this deadline.
FETCH_DEADLINE_SECONDS = env.float("FETCH_DEADLINE_SECONDS", default=30.0)
# Largest body accepted, counted after decompression; callers may pass their own limit (images).
FETCH_MAX_BYTES = env.int("FETCH_MAX_BYTES", default=15 * 1024 * 1024)
FETCH_MAX_REDIRECTS = env.int("FETCH_MAX_REDIRECTS", default=5)
# CA bundle for verifying HTTPS servers; empty means the bundled public CAs (certifi).
FETCH_CA_BUNDLE = env.str("FETCH_CA_BUNDLE", default="")

# --- The background pipeline (stories/pipeline.py) ----------------------------------------
# An import's lease on its source and host slot lasts this long unrenewed (a worker alive renews it every
# third of that); a killed worker's work is taken over once it lapses.
PIPELINE_LEASE_SECONDS = env.int("PIPELINE_LEASE_SECONDS", default=int(FETCH_DEADLINE_SECONDS) + 60)
# A queued step or import that has not finished this long after it was queued is queued again by the sweep.
PIPELINE_RETRY_SECONDS = env.int("PIPELINE_RETRY_SECONDS", default=60)
# Tries of one step before the story moves on without it (the reason is kept on the story).
PIPELINE_MAX_ATTEMPTS = env.int("PIPELINE_MAX_ATTEMPTS", default=5)
# Sources and stories the sweep queues at most per run.
PIPELINE_SWEEP_BATCH = env.int("PIPELINE_SWEEP_BATCH", default=500)

# --- Comments --------------------------------------------------------------------------------

# Longest comment, in characters of the text as written.
COMMENTS_MAX_LENGTH = env.int("COMMENTS_MAX_LENGTH", default=5000)
# How long after posting its author may still edit a comment.
COMMENTS_EDIT_WINDOW_SECONDS = env.int("COMMENTS_EDIT_WINDOW_SECONDS", default=15 * 60)
# Top-level comments per page of a thread; "Load more" fetches the next page.
COMMENTS_PER_PAGE = env.int("COMMENTS_PER_PAGE", default=20)
# Replies indent this many levels; deeper replies continue on the comment's own page.
COMMENTS_MAX_DEPTH = env.int("COMMENTS_MAX_DEPTH", default=5)
# Rate-limit rules marked "new accounts only" apply to accounts younger than this many days.
COMMENTS_NEW_ACCOUNT_DAYS = env.int("COMMENTS_NEW_ACCOUNT_DAYS", default=3)
# A reader a moderator has approved this many comments of is no longer held as a new commenter; 0: never.
COMMENTS_TRUSTED_AFTER_APPROVALS = env.int("COMMENTS_TRUSTED_AFTER_APPROVALS", default=3)
# Secret salt of the keyed hash kept instead of a commenter's IP address.
COMMENTS_IP_HASH_SALT = env.str("COMMENTS_IP_HASH_SALT", default=SECRET_KEY)
# How often an open thread asks whether new comments came ("N new comments — show"), while its tab is
# visible; 0: never.
COMMENTS_LIVE_POLL_SECONDS = env.int("COMMENTS_LIVE_POLL_SECONDS", default=20)
# Address links in notification mail start with, e.g. https://news.example.org; empty: the site's
# domain (Sites framework) over HTTPS, or HTTP when DEBUG is on.
COMMENTS_EMAIL_BASE_URL = env.str("COMMENTS_EMAIL_BASE_URL", default="")
# Recommendations a signed-in reader may give or take back per hour.
COMMENTS_RECOMMENDATIONS_PER_HOUR = env.int("COMMENTS_RECOMMENDATIONS_PER_HOUR", default=60)

# --- Labelling -----------------------------------------------------------------------------

# Which labeller labels stories ("embedded" runs offline on the CPU; "openai" calls a chat-completions
# endpoint), and which to try next when it fails. "embedded" is always tried last.
LABELLER = env.str("LABELLER", default="embedded")
LABELLER_FALLBACKS = env.list("LABELLER_FALLBACKS", default=["embedded"])
# Any OpenAI-compatible endpoint: OpenAI, Ollama (http://127.0.0.1:11434/v1), vLLM, llama.cpp server.
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="https://api.openai.com/v1")
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-4o-mini")
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_TIMEOUT_SECONDS = env.float("OPENAI_TIMEOUT_SECONDS", default=30.0)
OPENAI_CONNECT_TIMEOUT_SECONDS = env.float("OPENAI_CONNECT_TIMEOUT_SECONDS", default=5.0)
OPENAI_MAX_RETRIES = env.int("OPENAI_MAX_RETRIES", default=2)
OPENAI_BACKOFF_SECONDS = env.float("OPENAI_BACKOFF_SECONDS", default=1.0)
# A 429 or 503 asking for a longer wait than this makes the story fall back instead of holding a worker.
OPENAI_MAX_RETRY_WAIT_SECONDS = env.float("OPENAI_MAX_RETRY_WAIT_SECONDS", default=20.0)
# Requests a minute across all workers (counted in the cache); 0 turns the budget off.
OPENAI_REQUESTS_PER_MINUTE = env.int("OPENAI_REQUESTS_PER_MINUTE", default=60)
# "json_schema" (structured output), "json_object" for endpoints without schemas, or "none".
OPENAI_RESPONSE_FORMAT = env.str("OPENAI_RESPONSE_FORMAT", default="json_schema")
# Also write the brief as short sections with headings; such stories are marked AI-generated.
OPENAI_WRITE_BRIEF = env.bool("OPENAI_WRITE_BRIEF", default=False)
# Learning from moderators' corrections (stories/labelling/learning.py). A refit is queued after this many
# section corrections made or withdrawn, and nightly.
LABELLER_REFIT_EVERY = env.int("LABELLER_REFIT_EVERY", default=20)
# Corrections a section needs before the fitted part speaks for it.
LABELLER_MIN_CORRECTIONS_PER_SECTION = env.int("LABELLER_MIN_CORRECTIONS_PER_SECTION", default=5)
# No moderator's corrections count for more than this share of a section's; 1 turns the guard off
# (a site with a single moderator needs that, or the fitted part never speaks).
LABELLER_MAX_MODERATOR_SHARE = env.float("LABELLER_MAX_MODERATOR_SHARE", default=0.5)
# Share of the corrections (by story) a new version is compared with the one in use on.
LABELLER_HELD_OUT_SHARE = env.float("LABELLER_HELD_OUT_SHARE", default=0.2)
# How often each worker asks which labeller version is promoted.
LABELLER_VERSION_CHECK_SECONDS = env.int("LABELLER_VERSION_CHECK_SECONDS", default=30)
# Recent stories checked for sections a new version would change.
LABELLER_CHANGE_SCAN_LIMIT = env.int("LABELLER_CHANGE_SCAN_LIMIT", default=2000)
# Label reports ("wrong section", "wrong tag") a signed-in reader may send per hour.
LABEL_REPORTS_PER_HOUR = env.int("LABEL_REPORTS_PER_HOUR", default=10)
# Follows, unfollows, saves and unsaves a signed-in reader may make per hour; most stories one digest lists.
FOLLOWS_CHANGES_PER_HOUR = env.int("FOLLOWS_CHANGES_PER_HOUR", default=120)
DIGEST_STORIES = env.int("DIGEST_STORIES", default=10)

# --- Images ----------------------------------------------------------------------------------
# Every story gets a picture it may show: its source's own when Source.may_show_images allows it,
# else a licensed photo from an image provider, downloaded, checked and stored by us (never hot-linked).

# Providers asked, in order; one without its API key is skipped (and without any, stories show none).
IMAGE_PROVIDERS = env.list("IMAGE_PROVIDERS", default=["pexels"])
PEXELS_API_KEY = env.str("PEXELS_API_KEY", default="")
PEXELS_API_URL = env.str("PEXELS_API_URL", default="https://api.pexels.com/v1")
# Results kept per story as candidates a moderator can choose among.
IMAGE_SEARCH_RESULTS = env.int("IMAGE_SEARCH_RESULTS", default=15)
# A photo another story shows is not chosen again within this many days.
IMAGE_REUSE_DAYS = env.int("IMAGE_REUSE_DAYS", default=30)
# Candidates downloaded per run before the story is left without a picture.
IMAGE_DOWNLOAD_ATTEMPTS = env.int("IMAGE_DOWNLOAD_ATTEMPTS", default=3)
# Wait this long after a 429 that names no time, and at most this long between tries of one story.
IMAGE_RATE_LIMIT_BACKOFF_SECONDS = env.int("IMAGE_RATE_LIMIT_BACKOFF_SECONDS", default=15 * 60)
IMAGE_API_DEADLINE_SECONDS = env.float("IMAGE_API_DEADLINE_SECONDS", default=15.0)
IMAGE_FETCH_DEADLINE_SECONDS = env.float("IMAGE_FETCH_DEADLINE_SECONDS", default=30.0)
# Largest download accepted, and largest picture decoded (width x height; a guard against decompression bombs).
IMAGE_MAX_BYTES = env.int("IMAGE_MAX_BYTES", default=20 * 1024 * 1024)
IMAGE_MAX_PIXELS = env.int("IMAGE_MAX_PIXELS", default=64_000_000)
# Narrower pictures are refused: they would look blurred as a hero image.
IMAGE_MIN_WIDTH = env.int("IMAGE_MIN_WIDTH", default=480)
# Stored widths (WebP each, plus one JPEG fallback at the largest), never wider than the original.
IMAGE_VARIANT_WIDTHS = env.list("IMAGE_VARIANT_WIDTHS", cast=int, default=[480, 960, 1600])
IMAGE_STORAGE_PREFIX = env.str("IMAGE_STORAGE_PREFIX", default="images")

# Stored files go to MEDIA_ROOT, or with STORAGE_BUCKET to any S3-compatible store, so web
# processes on several machines share them. Credentials come from AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY; AWS_S3_ENDPOINT_URL names a non-AWS store (MinIO, R2, Spaces...).
STORAGE_BUCKET = env.str("STORAGE_BUCKET", default="")
if STORAGE_BUCKET:
    STORAGES["default"] = {"BACKEND": "storages.backends.s3.S3Storage"}
    AWS_STORAGE_BUCKET_NAME = STORAGE_BUCKET
    AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None
    AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="") or None
    AWS_S3_CUSTOM_DOMAIN = env.str("AWS_S3_CUSTOM_DOMAIN", default="") or None
    AWS_LOCATION = env.str("AWS_LOCATION", default="media")
    # Public pictures with stable URLs: no signed, expiring links in cached pages.
    AWS_QUERYSTRING_AUTH = False
    AWS_S3_FILE_OVERWRITE = False
    AWS_S3_OBJECT_PARAMETERS = {"CacheControl": "public, max-age=31536000, immutable"}
    # Pictures then come from the store's host, which pages must allow (unless the policy is set by hand).
    if AWS_S3_CUSTOM_DOMAIN:
        _MEDIA_ORIGIN = f"https://{AWS_S3_CUSTOM_DOMAIN}"
    elif AWS_S3_ENDPOINT_URL:
        _MEDIA_ORIGIN = AWS_S3_ENDPOINT_URL.rstrip("/")
    else:
        _MEDIA_ORIGIN = f"https://{STORAGE_BUCKET}.s3.amazonaws.com"
        if AWS_S3_REGION_NAME:
            _MEDIA_ORIGIN += f" https://{STORAGE_BUCKET}.s3.{AWS_S3_REGION_NAME}.amazonaws.com"
    if "CONTENT_SECURITY_POLICY" not in env.ENVIRON:
        CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
            "img-src 'self'", f"img-src 'self' {_MEDIA_ORIGIN}", 1
        )
