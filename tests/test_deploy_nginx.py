"""The production deployment, run: nginx with deploy/nginx/newsreader.conf as shipped (only its placeholders
filled in) terminates TLS in front of gunicorn with production settings on the test database. A reader's
browser is a client on 127.0.0.2, another loopback address than the one nginx reaches gunicorn from."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from bench import _harness
from comments import services
from comments.models import Comment
from tests.conftest import PASSWORD, require
from tests.factories import StoryFactory, UserFactory
from tests.processes import database_url

pytestmark = pytest.mark.django_db(transaction=True)

PROJECT = Path(__file__).resolve().parent.parent
NGINX_SITE = PROJECT / "deploy" / "nginx" / "newsreader.conf"
WEB_UNIT = PROJECT / "deploy" / "systemd" / "newsreader-web.service"
SERVER_NAME = "news.test"
PROXY = "127.0.0.1"  # where nginx listens, and the address it connects to gunicorn from
READER = "127.0.0.2"  # the reader's own address: loopback too, but not nginx's
SPOOFED = "203.0.113.9"
ORIGIN = f"https://{SERVER_NAME}"
# Debian puts nginx in /usr/sbin, which is not on a user's PATH.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
# bench/wsgi.py is the product's application with STATIC_ROOT from BENCH_STATIC_ROOT (a temporary folder).
COLLECTSTATIC = (
    "import bench.wsgi; from django.core.management import call_command; "
    "call_command('collectstatic', '--noinput', verbosity=0)"
)


def directive(name: str, text: str) -> str:
    """The value of the first `name value;` line of an nginx configuration."""
    match = re.search(rf"^[ \t]*{name}[ \t]+([^;\n]+);", text, re.MULTILINE)
    assert match, f"no {name} in the configuration"
    return match.group(1).strip()


def seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)s?", value)
    assert match, f"{value!r} is not a whole number of seconds"
    return int(match.group(1))


def unit_setting(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{pattern!r} is not in the unit"
    return match.group(1)


def render_site(*, http_port: int, https_port: int, upstream: str, media_root: Path, tls: tuple[Path, Path]) -> str:
    """deploy/nginx/newsreader.conf with its placeholders filled in, as its header comment says."""
    text = NGINX_SITE.read_text()
    values = {
        "__SERVER_NAME__": SERVER_NAME,
        "__HTTP_LISTEN__": f"{PROXY}:{http_port}",
        "__HTTPS_LISTEN__": f"{PROXY}:{https_port}",
        "__UPSTREAM__": upstream,
        "__MEDIA_ROOT__": str(media_root),
        "__TLS_CERTIFICATE__": str(tls[0]),
        "__TLS_CERTIFICATE_KEY__": str(tls[1]),
    }
    for placeholder, value in values.items():
        assert placeholder in text, f"{placeholder} is documented but not used"
        text = text.replace(placeholder, value)
    assert not re.findall(r"__[A-Z_]+__", text), "a placeholder the test does not know"
    return text


def self_signed_certificate(work: Path) -> tuple[Path, Path]:
    certificate, key = work / "certificate.pem", work / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(certificate), "-days", "2", "-subj", f"/CN={SERVER_NAME}"),
            *("-addext", f"subjectAltName=DNS:{SERVER_NAME}"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return certificate, key


class Nginx:
    """nginx in the foreground and in its own process group, everything it writes inside `work`."""

    def __init__(self, *, work: Path, site: str, port: int) -> None:
        self.work = work
        self.port = port
        (work / "newsreader.conf").write_text(site)
        # Started as root, nginx runs its workers as "nobody", who cannot read the test's private folders.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (work / "nginx.conf").write_text(
            f"{user}worker_processes 1;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            f"    access_log {work}/access.log;\n"
            f"    client_body_temp_path {work}/client_body;\n"
            f"    proxy_temp_path {work}/proxy;\n"
            f"    fastcgi_temp_path {work}/fastcgi;\n"
            f"    uwsgi_temp_path {work}/uwsgi;\n"
            f"    scgi_temp_path {work}/scgi;\n"
            f"    include {work}/newsreader.conf;\n"
            "}\n"
        )
        self.error_log = work / "error.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Nginx":
        command = [NGINX, "-p", str(self.work), "-c", str(self.work / "nginx.conf"), "-e", str(self.error_log)]
        command += ["-g", f"daemon off; pid {self.work}/nginx.pid;"]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_until_listening(timeout=15)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _wait_until_listening(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                socket.create_connection((PROXY, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"nginx did not listen on {self.port} within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.error_log.read_text(errors="replace")[-3000:] if self.error_log.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


@dataclass(frozen=True)
class Deployment:
    http_port: int
    https_port: int
    media_root: Path

    def browser(self, *, address: str = READER) -> httpx.Client:
        """A client on `address` that accepts the self-signed certificate and names the site in Host."""
        return httpx.Client(
            transport=httpx.HTTPTransport(verify=False, local_address=address),
            base_url=f"https://{PROXY}:{self.https_port}",
            headers={"Host": SERVER_NAME},
            trust_env=False,
            timeout=10,
        )

    def plain_http(self) -> httpx.Client:
        return httpx.Client(
            transport=httpx.HTTPTransport(local_address=READER),
            base_url=f"http://{PROXY}:{self.http_port}",
            trust_env=False,
            timeout=10,
        )

    def tls_socket(self) -> ssl.SSLSocket:
        """A TLS connection from the reader's address, for requests no HTTP client sends."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = socket.create_connection((PROXY, self.https_port), timeout=10, source_address=(READER, 0))
        return context.wrap_socket(sock)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, django_db_setup) -> Iterator[Deployment]:
    """Static files collected with production settings, gunicorn on the test database, nginx in front."""
    require(NGINX is not None, "nginx is not installed (apt-get install nginx)")
    require(shutil.which("openssl") is not None, "openssl is not installed (apt-get install openssl)")
    require(connection.vendor == "postgresql", "gunicorn shares the test database: set DATABASE_URL to PostgreSQL")
    require(bool(settings.REDIS_URL), "REDIS_URL is not set")
    work = tmp_path_factory.mktemp("deploy")
    tls = self_signed_certificate(work)
    environment = _harness.production_environment(
        database_url=database_url(), redis_url=settings.REDIS_URL, work_dir=work, page_cache_seconds=60
    )
    environment.update(
        {
            "ALLOWED_HOSTS": SERVER_NAME,
            "SITE_DOMAIN": SERVER_NAME,
            "SECURE_SSL_REDIRECT": "true",
            "USE_X_FORWARDED_PROTO": "true",
            "TRUSTED_PROXIES": f"{PROXY}/32",
            # The test's own writes invalidate gunicorn's cached pages, and its hashes of addresses match.
            "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", ""),
            "COMMENTS_IP_HASH_SALT": settings.COMMENTS_IP_HASH_SALT,
        }
    )
    # Hashed and compressed by the production settings' storage, as `collectstatic` does on a server.
    subprocess.run([sys.executable, "-c", COLLECTSTATIC], cwd=PROJECT, env=environment, check=True, timeout=120)
    (work / "media").mkdir()
    with _harness.Server(
        app="bench.wsgi:application",
        environment=environment,
        log_path=work / "gunicorn.log",
        workers=2,
        worker_class="sync",
        threads=1,
        ready_path="/healthz",
    ) as gunicorn:
        http_port, https_port = _harness.free_port(), _harness.free_port()
        site = render_site(
            http_port=http_port,
            https_port=https_port,
            upstream=f"{_harness.HOST}:{gunicorn.port}",
            media_root=work / "media",
            tls=tls,
        )
        with Nginx(work=work, site=site, port=https_port):
            yield Deployment(http_port=http_port, https_port=https_port, media_root=work / "media")


def form_field(name: str, html: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert match, f"no {name} in the form"
    return match.group(1)


def log_in(browser: httpx.Client, email: str) -> None:
    """Through allauth's login page, as a browser does: its CSRF cookie and token, then the form."""
    page = browser.get("/accounts/login/")
    assert page.status_code == 200
    response = browser.post(
        "/accounts/login/",
        data={
            "login": email,
            "password": PASSWORD,
            "csrfmiddlewaretoken": form_field("csrfmiddlewaretoken", page.text),
        },
        headers={"Origin": ORIGIN, "X-Forwarded-For": SPOOFED},
    )
    assert response.status_code == 302, response.text[:500]
    assert "sessionid" in browser.cookies


def read_until_closed(sock: ssl.SSLSocket, *, since: float, limit: float) -> tuple[float, bytes]:
    """What the server sent until it closed the connection, and how long after `since` it closed it."""
    sock.settimeout(limit)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the connection was still open after {limit:.0f} s")
    except (ssl.SSLError, ConnectionResetError):
        pass  # closed without TLS's goodbye: closed all the same
    return time.monotonic() - since, received


# --- The files agree -------------------------------------------------------------------------


def test_nginx_proxies_to_where_the_unit_binds_gunicorn_and_outwaits_its_timeout():
    site, unit = NGINX_SITE.read_text(), WEB_UNIT.read_text()

    documented_upstream = re.search(r"s\|__UPSTREAM__\|([^|]+)\|g", site).group(1)
    assert documented_upstream == unit_setting(r"--bind\s+(\S+)", unit)
    gunicorn_timeout = int(unit_setting(r"--timeout\s+(\d+)", unit))
    assert gunicorn_timeout < seconds(directive("proxy_read_timeout", site)) <= gunicorn_timeout + 10
    assert int(unit_setting(r"--graceful-timeout\s+(\d+)", unit)) < int(unit_setting(r"^TimeoutStopSec=(\d+)", unit))
    upstream_keepalive = seconds(directive("keepalive_timeout", site))
    assert int(unit_setting(r"--keep-alive\s+(\d+)", unit)) > upstream_keepalive


# --- Through nginx ---------------------------------------------------------------------------


def test_reader_reads_the_list_and_a_story_over_https(deployment):
    story = StoryFactory(title="Ferries run on shore power")

    with deployment.browser() as browser:
        listing = browser.get("/", headers={"Accept-Encoding": "gzip"})
        page = browser.get(story.get_absolute_url())
        stylesheet = browser.get(re.search(r'href="(/static/[^"]+\.css)"', page.text).group(1))

    # 200 rather than a redirect to HTTPS: the app believes nginx's X-Forwarded-Proto.
    assert listing.status_code == 200
    assert "Ferries run on shore power" in listing.text
    assert listing.headers["Content-Encoding"] == "gzip"
    assert page.status_code == 200
    assert "Ferries run on shore power" in page.text
    assert stylesheet.status_code == 200
    assert "immutable" in stylesheet.headers["Cache-Control"]


def test_plain_http_moves_to_https_on_the_sites_own_name_except_health_checks(deployment):
    with deployment.plain_http() as http:
        page = http.get("/stories/ferries/?page=2", headers={"Host": SERVER_NAME})
        made_up_host = http.get("/", headers={"Host": "evil.example"})
        probe = http.get("/healthz", headers={"Host": "10.0.0.5"})
    with deployment.browser() as browser:
        secure_probe = browser.get("/healthz")

    assert page.status_code == 301
    assert page.headers["Location"] == f"https://{SERVER_NAME}/stories/ferries/?page=2"
    assert made_up_host.headers["Location"] == f"https://{SERVER_NAME}/"
    assert probe.status_code == 200
    assert probe.json() == {"status": "ok"}
    assert secure_probe.status_code == 200


def post_comment_twice(deployment: Deployment, *, address: str, story, reader, body: str) -> list[httpx.Response]:
    """A reader on `address` signs in and submits one comment form twice, each time with a forged
    X-Forwarded-For, as a double click would."""
    with deployment.browser(address=address) as browser:
        log_in(browser, reader.email)
        thread = browser.get(f"/comments/{story.slug}/")
        form = {
            "body": body,
            "idempotency_key": form_field("idempotency_key", thread.text),
            "csrfmiddlewaretoken": form_field("csrfmiddlewaretoken", thread.text),
        }
        headers = {"Origin": ORIGIN, "X-Forwarded-For": SPOOFED}
        return [browser.post(f"/comments/{story.slug}/post/", data=form, headers=headers) for _ in range(2)]


def address_hash(story, address: str) -> str:
    """The hash the comment service keeps for `address`, from a comment posted directly."""
    return services.comment_create(
        story=story, author=UserFactory(), body=f"From {address}", ip_address=address
    ).author_ip_hash


def test_signed_in_reader_comments_once_and_the_app_sees_their_own_address(deployment):
    story, reader = StoryFactory(), UserFactory()

    first, second = post_comment_twice(deployment, address=READER, story=story, reader=reader, body="Bikes allowed?")

    assert first.status_code == second.status_code == 302, first.text[:500]
    assert first.headers["Location"] == second.headers["Location"]
    posted = Comment.objects.get(story=story)
    assert posted.author == reader
    assert posted.author_ip_hash == address_hash(story, READER)
    assert posted.author_ip_hash not in (address_hash(story, SPOOFED), address_hash(story, PROXY))


def test_a_forged_forwarded_for_is_dropped_even_from_an_address_the_app_trusts(deployment):
    """Were nginx to append to the client's X-Forwarded-For, a reader on a proxy's address (here the
    machine itself) would choose the address the app records; nginx overwrites it instead."""
    story, reader = StoryFactory(), UserFactory()

    first, _ = post_comment_twice(deployment, address=PROXY, story=story, reader=reader, body="From the machine")

    assert first.status_code == 302, first.text[:500]
    posted = Comment.objects.get(story=story)
    assert posted.author_ip_hash == address_hash(story, PROXY)
    assert posted.author_ip_hash != address_hash(story, SPOOFED)


def test_media_files_are_served_from_disk_and_never_as_pages(deployment):
    folder = deployment.media_root / "images" / str(uuid.uuid4())
    folder.mkdir(parents=True)
    (folder / "1-abc-480w.webp").write_bytes(b"RIFF\x00\x00\x00\x00WEBPVP8 ")
    (folder / "page.html").write_text("<script>alert(document.cookie)</script>")
    (folder / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    url = f"/media/{folder.relative_to(deployment.media_root)}"

    with deployment.browser() as browser:
        picture = browser.get(f"{url}/1-abc-480w.webp")
        html = browser.get(f"{url}/page.html")
        svg = browser.get(f"{url}/drawing.svg")
        missing = browser.get(f"{url}/missing.webp")

    assert picture.status_code == 200
    assert picture.content == b"RIFF\x00\x00\x00\x00WEBPVP8 "
    assert picture.headers["Content-Type"] == "image/webp"
    assert picture.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    for page in (html, svg):
        assert page.status_code == 200
        assert page.headers["Content-Type"] == "application/octet-stream"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in page.headers["Content-Security-Policy"]
    assert missing.status_code == 404


def test_metrics_answer_only_on_this_machine(deployment):
    with deployment.browser() as browser:
        remote = browser.get("/metrics")
    with deployment.browser(address=PROXY) as local:
        scrape = local.get("/metrics")

    assert remote.status_code == 403
    assert "nginx" in remote.text  # refused by nginx; the app never saw it
    assert scrape.status_code == 200
    assert "newsreader_" in scrape.text


def test_request_bodies_over_a_megabyte_are_refused_by_nginx(deployment):
    limit = directive("client_max_body_size", NGINX_SITE.read_text())
    assert limit == "1m"

    with deployment.tls_socket() as sock:
        sock.sendall(
            f"POST /comments/x/post/ HTTP/1.1\r\nHost: {SERVER_NAME}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {2 * 1024 * 1024}\r\n\r\n".encode()
        )
        answer = sock.recv(4096)
    with deployment.browser() as browser:
        just_under = browser.post("/", content=b"x" * 1_000_000, headers={"Origin": ORIGIN})

    assert answer.startswith(b"HTTP/1.1 413 ")
    # A body just under the limit reaches the app, which refuses it for its own reason (no CSRF token).
    assert just_under.status_code == 403
    assert "CSRF" in just_under.text


def test_clients_that_stall_their_headers_or_body_are_cut_off(deployment):
    site = NGINX_SITE.read_text()
    header_timeout = seconds(directive("client_header_timeout", site))
    body_timeout = seconds(directive("client_body_timeout", site))
    assert max(header_timeout, body_timeout) <= 15

    stalled_headers, stalled_body = deployment.tls_socket(), deployment.tls_socket()
    with stalled_headers, stalled_body, ThreadPoolExecutor(max_workers=2) as pool:
        stalled_headers.sendall(f"GET / HTTP/1.1\r\nHost: {SERVER_NAME}\r\n".encode())
        headers_sent = time.monotonic()
        stalled_body.sendall(
            f"POST / HTTP/1.1\r\nHost: {SERVER_NAME}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: 100\r\n\r\nbody=hello".encode()
        )
        body_sent = time.monotonic()
        headers_cut = pool.submit(read_until_closed, stalled_headers, since=headers_sent, limit=header_timeout + 5)
        body_cut = pool.submit(read_until_closed, stalled_body, since=body_sent, limit=body_timeout + 5)
        (header_seconds, header_answer), (body_seconds, body_answer) = headers_cut.result(), body_cut.result()

    assert header_timeout - 2 <= header_seconds <= header_timeout + 3
    assert body_timeout - 2 <= body_seconds <= body_timeout + 3
    # nginx closes such connections, or answers 408 first; never does the request reach the app.
    for answer in (header_answer, body_answer):
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")
