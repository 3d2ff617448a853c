"""Middleware the whole site shares: response headers, refusing unreadable input, and a 503 while a
backing service is away."""

import logging
import re
from collections.abc import Callable
from urllib.parse import parse_qsl

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.loader import render_to_string
from kombu.exceptions import OperationalError as BrokerUnavailable

logger = logging.getLogger(__name__)


class ContentSecurityPolicyMiddleware:
    """Adds the site's Content-Security-Policy: our pages carry no inline scripts or styles."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response


# A NUL cannot be stored in PostgreSQL text, and a lone surrogate cannot be encoded to send it there.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
INVALID_TEXT_MESSAGE = (
    "Bad request: a query parameter or form field holds text that is not valid "
    "(a NUL character, or bytes that are not UTF-8)."
)


class InvalidTextMiddleware:
    """Answers 400 to a request whose query string or form fields hold text the database cannot store
    (a NUL, a lone surrogate) or that does not decode in its charset, before any view queries with it.

    It reads the form in `process_view`, as CsrfViewMiddleware does anyway, and like it leaves the
    bodies of `csrf_exempt` views alone: such a view may still choose its own upload handlers.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Callable, view_args, view_kwargs) -> HttpResponse | None:
        query = request.META.get("QUERY_STRING", "").encode("iso-8859-1", errors="replace")
        valid = _valid_encoded_fields(query, request.encoding or settings.DEFAULT_CHARSET)
        if valid and request.method == "POST" and not getattr(view_func, "csrf_exempt", False):
            valid = _valid_form(request)
        if valid:
            return None
        return HttpResponseBadRequest(INVALID_TEXT_MESSAGE, content_type="text/plain; charset=utf-8")


def _valid_encoded_fields(data: bytes, encoding: str) -> bool:
    """Whether a query string or urlencoded body decodes strictly to storable text. Django decodes
    the same data leniently (an invalid byte becomes U+FFFD), so this reads it again."""
    if not data:
        return True
    try:
        fields = parse_qsl(
            data.decode(encoding),
            keep_blank_values=True,
            encoding=encoding,
            errors="strict",
            max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
        )
    except (UnicodeError, LookupError):
        return False
    except ValueError:
        return True  # too many fields: Django answers 400 itself when the view reads them
    return not any(_UNSTORABLE.search(key) or _UNSTORABLE.search(value) for key, value in fields)


def _valid_form(request: HttpRequest) -> bool:
    if request.content_type == "application/x-www-form-urlencoded":
        # Django reads such a form as UTF-8, and refuses any other charset itself.
        return _valid_encoded_fields(request.body, "utf-8")
    if request.content_type == "multipart/form-data":
        # Django has decoded the fields leniently and dropped unprintable characters from file names.
        texts = (text for key, values in request.POST.lists() for text in (key, *values))
        return not any(_UNSTORABLE.search(text) for text in texts)
    return True


# Long enough for Redis or the broker to restart.
RETRY_AFTER_SECONDS = 30


class ServiceUnavailableMiddleware:
    """Answers 503 with Retry-After, not 500, when a view finds Redis or the Celery broker unreachable.

    Pages and sessions do without Redis (newsreader/cache.py); this is the net for code that cannot.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (redis.ConnectionError, redis.TimeoutError, BrokerUnavailable)):
            return None
        logger.error("Service unavailable for %s %s: %s", request.method, request.path, exception, exc_info=exception)
        response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


class PrivatePagesMiddleware:
    """Marks every answer to a signed-in reader `Cache-Control: private, no-store`.

    Their pages carry their name, their forms and their own comments awaiting moderation, and an export
    holds everything they wrote: no shared cache may keep them, nor the browser once the tab is closed.
    Visitors' pages keep their headers (the page cache decides about those).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            response["Cache-Control"] = "private, no-store"
        return response
