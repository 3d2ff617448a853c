"""Structured logs: the ids of the request or Celery task in hand, added to every log record, and the
formatter that writes one JSON object a line when LOG_FORMAT=json.

The middleware and the Celery signal handlers in `newsreader.observability` bind the ids; this module
imports nothing of the apps, so logging can be configured before they load.
"""

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

# Ids of the request or task in hand, as log record attributes.
_fields: ContextVar[dict | None] = ContextVar("newsreader_log_fields", default=None)
# The request in hand, read only for its user id (once its user is loaded: logging never loads one).
_request: ContextVar[object | None] = ContextVar("newsreader_log_request", default=None)

# Record attributes a JSON line carries when they are set, in this order.
CONTEXT_FIELDS = (
    "request_id",
    "user_id",
    "method",
    "view",
    "status",
    "duration_ms",
    "task_name",
    "task_id",
    "source_id",
    "story_id",
)


def bind(*, request: object | None = None, **fields) -> tuple:
    """Add `fields` (and, with `request`, its user id) to every record logged until `unbind(binding)`."""
    return _fields.set({**(_fields.get() or {}), **fields}), _request.set(request) if request is not None else None


def unbind(binding: tuple) -> None:
    fields_token, request_token = binding
    if request_token is not None:
        _request.reset(request_token)
    _fields.reset(fields_token)


def user_id(request: object) -> int | None:
    """The signed-in user's id, if authentication has already loaded the user; never the email."""
    # AuthenticationMiddleware keeps the user it loaded here; asking `request.user` would load it.
    user = getattr(request, "_cached_user", None)
    if user is None or not user.is_authenticated:
        return None
    return user.pk


class ContextFilter(logging.Filter):
    """Adds the ids of the request or task in hand to each record (what the call site passed wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_fields.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        request = _request.get()
        if request is not None and getattr(record, "user_id", None) is None:
            record.user_id = user_id(request)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, the ids in CONTEXT_FIELDS
    that are set, and the traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
