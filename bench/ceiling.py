"""The benchmark server's URLconf: the product's URLs plus a bare "ceiling" view.

`/__bench__/ceiling/<size>/` answers with a pre-rendered HTML page of exactly `size` bytes through
the same middleware as every page, so a page's requests per second divided by the ceiling's at the
same size says how much of the server's capacity the page's own work takes. Only the benchmark's
WSGI entry point (bench/wsgi.py) uses this module; the product's URLs never include it.
"""

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import include, path

MAX_CEILING_BYTES = 4 * 1024 * 1024
_OPENING = b"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>ceiling</title></head><body><p>"
_CLOSING = b"</p></body></html>\n"
_pages: dict[int, bytes] = {}


def ceiling_page(size: int) -> bytes:
    """An HTML page of exactly `size` bytes (at least the bare markup), built once per size."""
    page = _pages.get(size)
    if page is None:
        filler = max(0, size - len(_OPENING) - len(_CLOSING))
        page = _pages[size] = _OPENING + b"x" * filler + _CLOSING
    return page


def ceiling(request: HttpRequest, size: int) -> HttpResponse:
    if size > MAX_CEILING_BYTES:
        raise Http404("Ceiling pages go up to 4 MiB.")
    return HttpResponse(ceiling_page(size), content_type="text/html; charset=utf-8")


urlpatterns = [
    path("__bench__/ceiling/<int:size>/", ceiling, name="bench_ceiling"),
    path("", include("newsreader.urls")),
]
