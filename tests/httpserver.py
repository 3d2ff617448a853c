"""A real HTTP server on 127.0.0.1, in a thread, for tests that fetch feeds, pages and images.

Routes answer with a ``Reply`` (status, headers, body, delays, a slow drip, a redirect) or with a function
of the ``Request`` that returns one. Every request and every accepted connection is recorded.

    from tests.httpserver import Reply, http_server  # noqa: F401  (or import the fixture in conftest.py)

    def test_feed_is_imported(http_server):
        http_server.route("/feed.xml", Reply(body=b"<rss/>", headers={"Content-Type": "application/rss+xml"}))
        fetch(http_server.url("/feed.xml"))
"""

import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Reply:
    """What a route answers. ``body`` is bytes (sent with its Content-Length unless ``headers`` sets one,
    which may lie) or an iterable of byte chunks (sent close-delimited, or chunked if ``chunked``), with
    ``chunk_interval`` seconds before each chunk after the first: a slow drip. ``delay`` waits before the
    status line. Pass ``itertools.repeat(b".")`` as the body for a drip that never ends. An iterator body
    is used up by the first request; route a function to build a fresh one per request."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_interval: float = 0.0
    chunked: bool = False

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> "Reply":
        return cls(status=status, headers={"Location": location})


@dataclass(frozen=True)
class Request:
    """A request the server received. ``headers`` looks names up case-insensitively."""

    method: str
    path: str
    headers: Message
    body: bytes


Handler = Reply | Callable[[Request], Reply]


class LocalHTTPServer:
    """An HTTP (or, with ``ssl_context``, HTTPS) server on an ephemeral port of ``host``."""

    def __init__(self, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[Request] = []
        self.connections = 0
        self.stopping = threading.Event()
        self.scheme = "https" if ssl_context else "http"
        self._lock = threading.Lock()
        self._server = _Server((host, 0), _RequestHandler, owner=self, ssl_context=ssl_context)
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def route(self, path: str, handler: Handler) -> None:
        """Answer requests for ``path`` (without the query string); unknown paths get a 404."""
        self.routes[path] = handler

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def start(self) -> "LocalHTTPServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "LocalHTTPServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _record(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
        handler = self.routes.get(request.path.split("?", 1)[0])
        if handler is None:
            return Reply(status=404, body=b"not found")
        return handler(request) if callable(handler) else handler

    def _count_connection(self) -> None:
        with self._lock:
            self.connections += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler may be dripping a body that never ends

    def __init__(self, address, handler_class, *, owner: LocalHTTPServer, ssl_context: ssl.SSLContext | None):
        self.owner = owner
        self.ssl_context = ssl_context
        super().__init__(address, handler_class)

    def process_request(self, request, client_address):
        self.owner._count_connection()
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        """Quiet about clients that hang up or refuse our certificate (tests provoke both on purpose),
        loud about anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server: _Server

    def setup(self) -> None:
        if self.server.ssl_context is not None:
            # The handshake happens here, in the connection's own thread, so one slow client cannot
            # hold up the accept loop.
            self.request = self.server.ssl_context.wrap_socket(self.request, server_side=True)
        super().setup()

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read ``LocalHTTPServer.requests`` instead."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(self.command, self.path, self.headers, self.rfile.read(length) if length else b"")
        reply = self.server.owner._record(request)
        stopping = self.server.owner.stopping
        if reply.delay and stopping.wait(reply.delay):
            return
        try:
            self._send(reply, stopping)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True  # the client gave up, as fetches with a deadline do

    def _send(self, reply: Reply, stopping: threading.Event) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        names = {name.lower() for name in reply.headers}
        if isinstance(reply.body, bytes):
            if "content-length" in names:
                self.close_connection = True  # the declared length may not match what follows
            else:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
            return
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif "content-length" not in names:
            self.send_header("Connection", "close")
        self.close_connection = not reply.chunked
        self.end_headers()
        for index, chunk in enumerate(reply.body):
            if index and reply.chunk_interval and stopping.wait(reply.chunk_interval):
                return
            if stopping.is_set():
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if reply.chunked else chunk)
            self.wfile.flush()
        if reply.chunked:
            self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def http_server(settings):
    """A started LocalHTTPServer on 127.0.0.1 that the outbound fetcher may reach (FETCH_ALLOWED_NETWORKS
    names it for this test only), closed after the test."""
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with LocalHTTPServer() as server:
        yield server
