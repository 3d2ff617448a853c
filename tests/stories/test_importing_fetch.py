"""The outbound fetcher: what it returns, what it refuses, and the limits it keeps, against real servers
on 127.0.0.1."""

import datetime
import gzip
import ipaddress
import itertools
import pickle
import socket
import ssl
import zlib
from types import SimpleNamespace

import brotli
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stories.importing.fetch import (
    BlockedAddress,
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    InvalidURL,
    NetworkError,
    Redirect,
    ResponseTooLarge,
    TooManyRedirects,
    UnsupportedScheme,
    address_block_reason,
    fetch,
)
from tests.httpserver import LocalHTTPServer, Reply, Request

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def connections_stay_on_this_machine(monkeypatch):
    """A safety net under the guard being tested: should it ever let a redirect to 10.0.0.1 or
    169.254.169.254 through, the test fails here instead of sending a packet off this machine."""
    real_create_connection = socket.create_connection

    def create_connection(address, *args, **kwargs):
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"a test tried to connect to {address[0]}")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)


@pytest.fixture
def server(settings):
    """A server on 127.0.0.1 that the fetcher is allowed to reach (as tests.httpserver.http_server)."""
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with LocalHTTPServer() as local:
        yield local


@pytest.fixture
def dns(monkeypatch):
    """Scripted answers for made-up names: ``answers[name]`` lists the answers to successive lookups (the
    last repeats), each an address, a tuple of addresses, or () for "no such name". Other names resolve
    as usual. Patched at socket.getaddrinfo, the lookup every connection goes through, so a second
    resolution anywhere in the stack would show in ``lookups`` and get the later answer."""
    real_getaddrinfo = socket.getaddrinfo
    script = SimpleNamespace(answers={}, lookups=[])

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in script.answers:
            return real_getaddrinfo(host, port, *args, **kwargs)
        script.lookups.append(name)
        queue = script.answers[name]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        addresses = (answer,) if isinstance(answer, str) else answer
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [info for address in addresses for info in real_getaddrinfo(address, port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return script


# --- Success, conditional GET, redirects -----------------------------------------------------


def test_fetch_returns_body_status_and_headers(server):
    server.route(
        "/story.html",
        Reply(
            body="<p>Grüße</p>".encode("latin-1"),
            headers={
                "Content-Type": "text/html; charset=ISO-8859-1",
                "ETag": '"v1"',
                "Last-Modified": "Tue, 01 Apr 2025 10:00:00 GMT",
            },
        ),
    )

    result = fetch(server.url("/story.html"))

    assert result.status == 200
    assert result.body == "<p>Grüße</p>".encode("latin-1")
    assert result.content_type == "text/html"
    assert result.charset == "iso-8859-1"
    assert result.etag == '"v1"'
    assert result.last_modified == "Tue, 01 Apr 2025 10:00:00 GMT"
    assert result.headers["content-type"] == "text/html; charset=ISO-8859-1"
    assert result.not_modified is False
    assert result.url == result.requested_url == server.url("/story.html")
    assert result.redirects == ()
    assert result.elapsed > 0


def test_every_request_names_newsreader_in_its_user_agent(server, settings):
    server.route("/", Reply(body=b"ok"))

    fetch(server.url("/"))

    user_agent = server.requests[0].headers["User-Agent"]
    assert user_agent == settings.FETCH_USER_AGENT
    assert user_agent.startswith("Newsreader/")


def test_caller_headers_are_sent_but_user_agent_setting_is_the_default(server, settings):
    settings.FETCH_USER_AGENT = "Newsreader/9 (+https://news.example.org)"
    server.route("/", Reply(body=b"ok"))

    fetch(server.url("/"), headers={"Accept": "application/rss+xml"})

    assert server.requests[0].headers["User-Agent"] == "Newsreader/9 (+https://news.example.org)"
    assert server.requests[0].headers["Accept"] == "application/rss+xml"


def _conditional(request: Request) -> Reply:
    validators = {"ETag": '"v7"', "Last-Modified": "Tue, 01 Apr 2025 10:00:00 GMT"}
    if (
        request.headers["If-None-Match"] == '"v7"'
        or request.headers["If-Modified-Since"] == validators["Last-Modified"]
    ):
        return Reply(status=304, headers={"ETag": '"v7"'})
    return Reply(body=b"<rss/>", headers=validators)


def test_stored_etag_makes_an_unchanged_feed_a_not_modified_result(server):
    server.route("/feed.xml", _conditional)
    first = fetch(server.url("/feed.xml"))

    second = fetch(server.url("/feed.xml"), etag=first.etag)

    assert first.not_modified is False
    assert first.body == b"<rss/>"
    assert server.requests[1].headers["If-None-Match"] == '"v7"'
    assert second.status == 304
    assert second.not_modified is True
    assert second.body == b""
    assert second.etag == '"v7"'


def test_stored_last_modified_makes_an_unchanged_feed_a_not_modified_result(server):
    server.route("/feed.xml", _conditional)

    result = fetch(server.url("/feed.xml"), last_modified="Tue, 01 Apr 2025 10:00:00 GMT")

    assert server.requests[0].headers["If-Modified-Since"] == "Tue, 01 Apr 2025 10:00:00 GMT"
    assert server.requests[0].headers["If-None-Match"] is None
    assert result.not_modified is True
    assert result.last_modified == "Tue, 01 Apr 2025 10:00:00 GMT"


def test_redirect_chain_is_followed_and_recorded(server):
    server.route("/old", Reply.redirect(server.url("/moved"), status=301))
    server.route("/moved", Reply.redirect("/current?x=1", status=302))  # relative Location
    server.route("/current", Reply(body=b"here"))

    result = fetch(server.url("/old"))

    assert result.body == b"here"
    assert result.url == server.url("/current?x=1")
    assert result.requested_url == server.url("/old")
    assert result.redirects == (Redirect(server.url("/old"), 301), Redirect(server.url("/moved"), 302))
    assert [r.permanent for r in result.redirects] == [True, False]


def test_five_redirects_are_followed_and_a_sixth_is_refused(server, settings):
    assert settings.FETCH_MAX_REDIRECTS == 5
    for hop in range(10):
        server.route(f"/hop/{hop}", Reply.redirect(f"/hop/{hop + 1}"))
    server.route("/hop/5", Reply(body=b"arrived"))

    assert fetch(server.url("/hop/0")).body == b"arrived"

    server.route("/hop/5", Reply.redirect("/hop/6"))
    with pytest.raises(TooManyRedirects, match="more than 5 times"):
        fetch(server.url("/hop/0"))
    assert server.requests[-1].path == "/hop/5"  # nothing requested past the limit


def test_credentials_are_not_sent_to_another_origin_after_a_redirect(server, settings):
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.1/32", "localhost"]
    server.route("/api", Reply.redirect("/api/v2"))
    server.route("/api/v2", Reply.redirect(server.url("/elsewhere", host="localhost")))
    server.route("/elsewhere", Reply(body=b"ok"))

    fetch(server.url("/api"), headers={"Authorization": "Bearer secret"})

    sent = {request.path: request.headers["Authorization"] for request in server.requests}
    assert sent == {"/api": "Bearer secret", "/api/v2": "Bearer secret", "/elsewhere": None}


# --- The address guard -----------------------------------------------------------------------

LOOPBACK_FORMS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://2130706433:{port}/",  # decimal
    "http://017700000001:{port}/",  # octal
    "http://0x7f.1:{port}/",  # hex, short
    "http://0x7f000001:{port}/",
    "http://127.1:{port}/",  # short
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",  # IPv4-mapped IPv6
]


@pytest.mark.parametrize("form", LOOPBACK_FORMS)
def test_guard_is_on_by_default_and_refuses_loopback_in_any_form(settings, form):
    assert settings.FETCH_ALLOWED_NETWORKS == []
    with LocalHTTPServer() as target:
        target.route("/", Reply(body=b"secret"))

        with pytest.raises(BlockedAddress, match="only fetches from public addresses") as refused:
            fetch(form.format(port=target.port))

        assert target.connections == 0
    assert "loopback" in str(refused.value)


def test_dotted_octal_host_is_refused_as_an_invalid_url(settings):
    with LocalHTTPServer() as target:
        with pytest.raises(InvalidURL):
            fetch(f"http://0177.0.0.1:{target.port}/")
        assert target.connections == 0


@pytest.mark.parametrize(
    "location",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:192.168.0.1]/",
        "http://100.64.0.1/",
    ],
)
def test_redirect_to_a_private_address_is_refused_before_connecting(server, location):
    server.route("/", Reply.redirect(location))

    with pytest.raises(BlockedAddress):
        fetch(server.url("/"))


def test_redirect_to_an_address_outside_the_allowed_networks_opens_no_connection(server):
    with LocalHTTPServer(host="127.0.0.2") as internal:
        internal.route("/admin", Reply(body=b"secret"))
        server.route("/", Reply.redirect(internal.url("/admin")))

        with pytest.raises(BlockedAddress, match=r"127\.0\.0\.2, a loopback address"):
            fetch(server.url("/"))

        assert internal.connections == 0
    assert len(server.requests) == 1


def test_allowed_networks_let_through_only_what_they_name(settings):
    with LocalHTTPServer() as local:
        local.route("/", Reply(body=b"ok"))
        settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.2/32"]
        with pytest.raises(BlockedAddress):
            fetch(local.url("/"))

        settings.FETCH_ALLOWED_NETWORKS = ["localhost"]
        assert fetch(local.url("/", host="localhost")).body == b"ok"
        with pytest.raises(BlockedAddress):
            fetch(local.url("/"))


def test_connection_goes_to_the_checked_address_even_if_dns_answers_differently_later(server, dns):
    dns.answers["rebind.newsreader.test"] = ["127.0.0.1", "127.0.0.2"]
    server.route("/feed.xml", Reply(body=b"<rss/>"))

    result = fetch(server.url("/feed.xml", host="rebind.newsreader.test"))

    assert result.body == b"<rss/>"
    assert dns.lookups == ["rebind.newsreader.test"]
    assert server.requests[0].headers["Host"] == f"rebind.newsreader.test:{server.port}"


def test_a_host_with_any_private_address_among_public_ones_is_refused(server, dns):
    dns.answers["mixed.newsreader.test"] = [("8.8.8.8", "2606:4700:4700::1111", "10.0.0.1")]

    with pytest.raises(BlockedAddress, match=r"mixed\.newsreader\.test resolves to 10\.0\.0\.1, a private-network"):
        fetch("http://mixed.newsreader.test/")


def test_unresolvable_host_is_a_transient_network_error(dns):
    dns.answers["gone.newsreader.test"] = [()]

    with pytest.raises(NetworkError, match=r"cannot resolve the host of http://gone\.newsreader\.test/") as failed:
        fetch("http://gone.newsreader.test/")
    assert failed.value.transient is True


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://ftp.example.org/pub/feed.xml",
        "gopher://example.org:70/1",
        "javascript:alert(1)",
        "data:text/html,<p>hi</p>",
    ],
)
def test_only_http_and_https_are_fetched(url):
    with pytest.raises(UnsupportedScheme, match="only http and https"):
        fetch(url)


def test_redirect_to_another_scheme_is_refused(server):
    server.route("/", Reply.redirect("file:///etc/passwd"))

    with pytest.raises(UnsupportedScheme):
        fetch(server.url("/"))


# --- HTTPS to a pinned address ---------------------------------------------------------------


def _certificate(name: str, *, issuer_name: x509.Name, issuer_key, key, ca: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def tls(tmp_path, settings):
    """A certificate authority trusted through FETCH_CA_BUNDLE, and a server context for a given name.
    The server context records the SNI names it is asked for."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Newsreader test CA")])
    ca_cert = _certificate("Newsreader test CA", issuer_name=ca_name, issuer_key=ca_key, key=ca_key, ca=True)
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    settings.FETCH_CA_BUNDLE = str(tmp_path / "ca.pem")
    sni_names = []

    def server_context(name: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(name, issuer_name=ca_name, issuer_key=ca_key, key=key)
        (tmp_path / "server.pem").write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "server.pem")
        context.sni_callback = lambda _socket, server_name, _context: sni_names.append(server_name)
        return context

    return SimpleNamespace(server_context=server_context, sni_names=sni_names)


def test_https_to_a_pinned_address_verifies_the_certificate_for_the_host_name(settings, dns, tls):
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    dns.answers["feeds.newsreader.test"] = ["127.0.0.1", "127.0.0.2"]
    with LocalHTTPServer(ssl_context=tls.server_context("feeds.newsreader.test")) as secure:
        secure.route("/feed.xml", Reply(body=b"<rss/>"))

        result = fetch(secure.url("/feed.xml", host="feeds.newsreader.test"))

    assert result.body == b"<rss/>"
    assert result.url == f"https://feeds.newsreader.test:{secure.port}/feed.xml"
    assert tls.sni_names == ["feeds.newsreader.test"]
    assert dns.lookups == ["feeds.newsreader.test"]


def test_https_certificate_for_another_name_is_rejected(settings, dns, tls):
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    dns.answers["feeds.newsreader.test"] = ["127.0.0.1"]
    with LocalHTTPServer(ssl_context=tls.server_context("other.newsreader.test")) as secure:
        secure.route("/feed.xml", Reply(body=b"<rss/>"))

        with pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED"):
            fetch(secure.url("/feed.xml", host="feeds.newsreader.test"))

        assert secure.requests == []


# --- Deadline and size limits ----------------------------------------------------------------


@pytest.mark.timeout(30)
def test_slow_drip_ends_in_a_timeout_at_the_deadline(server):
    server.route("/drip", Reply(body=itertools.repeat(b"."), chunk_interval=0.1))

    with pytest.raises(FetchTimeout, match="did not finish within the 1 s deadline") as timed_out:
        fetch(server.url("/drip"), deadline=1)

    assert timed_out.value.transient is True


@pytest.mark.timeout(30)
def test_slow_chunked_drip_ends_in_a_timeout_at_the_deadline_setting(server, settings):
    settings.FETCH_DEADLINE_SECONDS = 1.5
    server.route("/drip", Reply(body=itertools.repeat(b"<item/>"), chunk_interval=0.1, chunked=True))

    with pytest.raises(FetchTimeout, match=r"1\.5 s deadline"):
        fetch(server.url("/drip"))


@pytest.mark.timeout(30)
def test_server_that_never_answers_ends_in_a_timeout(server):
    server.route("/silent", Reply(body=b"late", delay=60))

    with pytest.raises(FetchTimeout, match="deadline"):
        fetch(server.url("/silent"), deadline=0.5)


@pytest.mark.timeout(30)
def test_deadline_covers_the_whole_redirect_chain(server):
    server.route("/slow-hop", Reply(status=302, headers={"Location": "/slow-hop"}, delay=0.3))

    with pytest.raises(FetchTimeout):
        fetch(server.url("/slow-hop"), deadline=1)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(body=b"x" * 5000), id="declared length"),
        pytest.param(Reply(body=[b"x" * 1000] * 5), id="no length, close-delimited"),
        pytest.param(Reply(body=[b"x" * 1000] * 5, chunked=True), id="chunked"),
    ],
)
def test_body_over_the_limit_is_refused(server, reply):
    server.route("/big", reply)

    with pytest.raises(ResponseTooLarge, match="more than 4096 bytes"):
        fetch(server.url("/big"), max_bytes=4096)


def test_body_at_the_limit_is_accepted(server):
    server.route("/exact", Reply(body=[b"x" * 1024] * 4))

    assert len(fetch(server.url("/exact"), max_bytes=4096).body) == 4096


def test_limit_defaults_to_the_setting(server, settings):
    settings.FETCH_MAX_BYTES = 100
    server.route("/big", Reply(body=[b"x" * 60] * 2))

    with pytest.raises(ResponseTooLarge):
        fetch(server.url("/big"))


def test_body_longer_than_its_declared_length_is_cut_at_that_length(server):
    server.route("/liar", Reply(body=b"y" * 20_000, headers={"Content-Length": "10"}))

    assert fetch(server.url("/liar"), max_bytes=4096).body == b"y" * 10


def _zlib(data: bytes) -> bytes:
    return zlib.compress(data, 9)


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODINGS = [
    pytest.param("gzip", lambda data: gzip.compress(data, 9), id="gzip"),
    pytest.param("deflate", _zlib, id="deflate"),
    pytest.param("deflate", _raw_deflate, id="raw deflate"),
    pytest.param("br", lambda data: brotli.compress(data, quality=5), id="brotli"),
]


@pytest.mark.parametrize("piece_size", [None, 7], ids=["whole", "in small pieces"])
@pytest.mark.parametrize(("encoding", "compress"), ENCODINGS)
def test_compressed_body_is_decoded(server, encoding, compress, piece_size):
    text = b"<rss><channel><title>Compressed news</title></channel></rss>\n" * 2000
    body = compress(text)
    if piece_size:
        body = [body[start : start + piece_size] for start in range(0, len(body), piece_size)]
    server.route("/feed.xml", Reply(body=body, headers={"Content-Encoding": encoding}))

    result = fetch(server.url("/feed.xml"))

    assert result.body == text
    assert "br" in server.requests[0].headers["Accept-Encoding"]


@pytest.mark.parametrize(("encoding", "compress"), ENCODINGS)
def test_compression_bomb_is_refused_by_its_decoded_size(server, encoding, compress):
    bomb = compress(b"\0" * (50 * MIB))
    assert len(bomb) < 100_000  # the declared length is far under the limit
    server.route("/bomb", Reply(body=bomb, headers={"Content-Encoding": encoding}))

    with pytest.raises(ResponseTooLarge, match=f"more than {MIB} bytes"):
        fetch(server.url("/bomb"), max_bytes=MIB)


def test_unknown_content_encoding_is_an_error(server):
    server.route("/odd", Reply(body=b"\x28\xb5\x2f\xfd", headers={"Content-Encoding": "zstd"}))

    with pytest.raises(FetchError, match="Content-Encoding zstd"):
        fetch(server.url("/odd"))


def test_corrupt_compressed_body_is_an_error(server):
    server.route("/broken", Reply(body=b"not gzip at all", headers={"Content-Encoding": "gzip"}))

    with pytest.raises(FetchError, match="does not decode as gzip"):
        fetch(server.url("/broken"))


# --- Error statuses --------------------------------------------------------------------------


def _in_two_minutes() -> str:
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=2)
    return when.strftime("%a, %d %b %Y %H:%M:%S GMT")


@pytest.mark.parametrize(
    ("status", "retry_after", "expected_retry", "transient"),
    [
        (404, None, None, False),
        (410, None, None, False),
        (429, "120", (120, 120), True),
        (503, _in_two_minutes, (100, 120), True),
    ],
)
def test_error_status_carries_status_and_retry_after(server, status, retry_after, expected_retry, transient):
    headers = {"Retry-After": retry_after() if callable(retry_after) else retry_after} if retry_after else {}
    server.route("/feed.xml", Reply(status=status, headers=headers, body=b"nope"))

    with pytest.raises(HTTPStatusError) as failed:
        fetch(server.url("/feed.xml"))

    error = failed.value
    assert error.status == status
    assert error.url == server.url("/feed.xml")
    assert f"answered {status}" in str(error)
    assert error.transient is transient
    if expected_retry is None:
        assert error.retry_after is None
    else:
        low, high = expected_retry
        assert low <= error.retry_after <= high
        assert f"retry after {error.retry_after} s" in str(error)


def test_status_error_survives_pickling():
    error = HTTPStatusError("https://example.org/feed answered 429", "https://example.org/feed", 429, 60)

    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)

    assert (str(copy), copy.url, copy.status, copy.retry_after) == (str(error), error.url, 429, 60)


# --- The address classifier ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("169.254.1.1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.255", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address to classify, not to bind)
        ("0.1.2.3", "private"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "private"),
        ("192.0.0.8", "IETF"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fd00:ec2::254", "metadata"),
        ("fe80::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("2001::1", "private"),  # Teredo
        ("100::1", "private"),  # discard-only
        ("::127.0.0.1", "reserved"),  # IPv4-compatible, deprecated
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 around 127.0.0.1
        ("2002:a00:1::", "private"),  # 6to4 around 10.0.0.1
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 around 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 around 169.254.169.254
        ("64:ff9b:1::a00:1", "reserved"),  # local-use NAT64
    ],
)
def test_classifier_refuses_non_public_addresses(address, reason):
    assert reason in address_block_reason(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "100.63.255.255",  # just below carrier-grade NAT
        "100.128.0.0",  # just above it
        "172.32.0.1",  # just past 172.16/12
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "2002:808:808::1",  # 6to4 around a public address
        "64:ff9b::808:808",  # NAT64 around a public address
    ],
)
def test_classifier_lets_public_addresses_through(address):
    assert address_block_reason(ipaddress.ip_address(address)) is None
