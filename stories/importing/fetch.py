"""The one way Newsreader makes an outbound HTTP request (feeds, article pages, images, provider APIs).

``fetch()`` is a GET with the guard rails a server that fetches URLs chosen by others needs: only
http and https; every host, including each redirect hop, resolved once and refused if any of its
addresses is not public (and the connection then made to exactly the checked address, so a DNS
answer that changes in between cannot redirect it); a connect timeout and a total deadline that a
slowly dripping server cannot stretch; a body limit counted after decompression; conditional GET.
"""

import ipaddress
import socket
import ssl
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import brotli
import certifi
import httpcore
import httpx
from django.conf import settings

from newsreader.httpdates import retry_after_seconds

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Decompressed output is produced in pieces of at most this size, so a compression bomb is caught
# after one piece past the limit rather than after it has filled memory.
_PIECE = 64 * 1024
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")
_DECODABLE = ("gzip", "x-gzip", "deflate", "br")

_METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
# Ranges ipaddress's own properties let through or describe too vaguely for an operator.
_SPECIAL_NETWORKS = [
    (ipaddress.ip_network("100.64.0.0/10"), "a carrier-grade NAT (shared address space)"),
    (ipaddress.ip_network("192.0.0.0/24"), "an IETF protocol assignment"),
    (ipaddress.ip_network("192.0.2.0/24"), "a documentation"),
    (ipaddress.ip_network("198.51.100.0/24"), "a documentation"),
    (ipaddress.ip_network("203.0.113.0/24"), "a documentation"),
    (ipaddress.ip_network("198.18.0.0/15"), "a benchmarking"),
    (ipaddress.ip_network("255.255.255.255/32"), "the broadcast"),
    (ipaddress.ip_network("2001:db8::/32"), "a documentation"),
    (ipaddress.ip_network("fec0::/10"), "a site-local"),
]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


# --- Errors ----------------------------------------------------------------------------------
# Each keeps all its fields in ``args`` so it survives pickling (Celery results, logs).


class FetchError(Exception):
    """An outbound request failed; ``str(error)`` says why, ``url`` says where (the redirect hop that
    failed, if it got that far). ``transient`` is True when trying again later may well succeed
    (timeouts, broken connections, 429, 5xx)."""

    transient = False

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(message, url)
        self.message = message
        self.url = url

    def __str__(self) -> str:
        return self.message


class InvalidURL(FetchError):
    """The URL cannot be parsed, or has no host."""


class UnsupportedScheme(FetchError):
    """The URL is not http or https (file:, ftp:, gopher: and the rest are refused)."""


class BlockedAddress(FetchError):
    """The host resolves to an address outbound requests must not reach (loopback, private, link-local,
    cloud metadata, ...). Nothing was sent to it."""


class TooManyRedirects(FetchError):
    """The server redirected more often than FETCH_MAX_REDIRECTS allows."""


class ResponseTooLarge(FetchError):
    """The body, counted after decompression, is larger than the limit of this fetch."""


class NetworkError(FetchError):
    """The host could not be resolved or reached, or the connection broke."""

    transient = True


class FetchTimeout(FetchError):
    """The connection could not be made in time, or the whole fetch ran past its deadline."""

    transient = True


class HTTPStatusError(FetchError):
    """The server answered with a status that is not a success. The caller decides what it means
    (410 gone for good, 429 slow down, 5xx try later); ``retry_after`` is the server's Retry-After in
    seconds, or None."""

    def __init__(self, message: str, url: str = "", status: int = 0, retry_after: int | None = None) -> None:
        super().__init__(message, url)
        self.args = (message, url, status, retry_after)
        self.status = status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class Redirect:
    """One hop of a redirect chain: ``url`` answered ``status`` and pointed elsewhere."""

    url: str
    status: int

    @property
    def permanent(self) -> bool:
        return self.status in (301, 308)


@dataclass(frozen=True)
class FetchResult:
    """A successful fetch: a 2xx with its body, or a 304 (``not_modified``, empty body). ``url`` is the
    final URL, after any redirects (as in httpx); ``requested_url`` the one asked for."""

    url: str
    requested_url: str
    status: int
    headers: httpx.Headers
    body: bytes
    content_type: str
    charset: str | None
    etag: str | None
    last_modified: str | None
    not_modified: bool
    redirects: tuple[Redirect, ...]
    elapsed: float


def fetch(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    headers: Mapping[str, str] | None = None,
    max_bytes: int | None = None,
    deadline: float | None = None,
) -> FetchResult:
    """GET ``url`` safely. Pass the stored ``etag``/``last_modified`` for a conditional GET; ``max_bytes``
    and ``deadline`` (seconds) override FETCH_MAX_BYTES and FETCH_DEADLINE_SECONDS for this call.

    Raises a FetchError subclass for every failure, including any status other than 2xx and 304."""
    started = time.monotonic()
    limit = settings.FETCH_MAX_BYTES if max_bytes is None else max_bytes
    clock = _Deadline(settings.FETCH_DEADLINE_SECONDS if deadline is None else deadline)
    backend = _PinnedBackend(clock)
    request_headers = _request_headers(headers, etag=etag, last_modified=last_modified)
    redirects: list[Redirect] = []
    target = _checked_url(url, source=url)
    timeout = httpx.Timeout(clock.seconds, connect=settings.FETCH_CONNECT_TIMEOUT_SECONDS)
    transport = _PinnedTransport(backend=backend, ssl_context=_ssl_context(settings.FETCH_CA_BUNDLE))
    with httpx.Client(transport=transport, timeout=timeout, trust_env=False) as client:
        while True:
            if clock.remaining() <= 0:
                raise FetchTimeout(f"{url} did not finish within the {clock.seconds:g} s deadline", url)
            backend.pin(target, public_addresses(target))
            with _translated_errors(target, clock), client.stream("GET", target, headers=request_headers) as response:
                if not response.has_redirect_location:
                    return _result(
                        response,
                        url=url,
                        etag=etag,
                        last_modified=last_modified,
                        limit=limit,
                        redirects=redirects,
                        started=started,
                    )
                location = response.headers["Location"]
            if len(redirects) >= settings.FETCH_MAX_REDIRECTS:
                raise TooManyRedirects(
                    f"{url} redirected more than {settings.FETCH_MAX_REDIRECTS} times (last to {location}); "
                    "use the final address instead",
                    url,
                )
            redirects.append(Redirect(url=str(target), status=response.status_code))
            next_target = _checked_url(_join(target, location), source=url)
            if _origin(next_target) != _origin(target):
                for name in _CREDENTIAL_HEADERS:
                    request_headers.pop(name, None)
            target = next_target


def public_addresses(url: httpx.URL) -> list[str]:
    """Resolve the URL's host and return its addresses, or raise BlockedAddress if any of them is not
    public. Hosts and networks in FETCH_ALLOWED_NETWORKS are let through (for development and tests)."""
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise NetworkError(f"cannot resolve the host of {url}: {exc}", str(url)) from exc
    addresses = list(dict.fromkeys(str(answer[4][0]) for answer in answers))
    allowed_hosts, allowed_networks = _allowlist()
    if host.rstrip(".").lower() in allowed_hosts:
        return addresses
    for address in addresses:
        ip = _unmapped(ipaddress.ip_address(address))
        if any(ip in network for network in allowed_networks):
            continue
        reason = address_block_reason(ip)
        if reason:
            raise BlockedAddress(
                f"refused {url}: {host} resolves to {ip}, {reason} address. Newsreader only fetches from "
                "public addresses; add the host or network to FETCH_ALLOWED_NETWORKS if it is meant to be reached.",
                str(url),
            )
    return addresses


def address_block_reason(address: IPAddress) -> str | None:
    """Why an outbound request must not go to ``address`` ("a loopback", "a private", ...), or None if
    it is a public unicast address. IPv6 forms that embed an IPv4 address are judged by that address."""
    if address.version == 6:
        embedded = address.ipv4_mapped or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None
        )
        if embedded is not None:
            return address_block_reason(embedded)
        if address.sixtofour is not None and (reason := address_block_reason(address.sixtofour)):
            return reason
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata service"
    for label, flagged in (
        ("an unspecified", address.is_unspecified),
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
    ):
        if flagged:
            return label
    for network, label in _SPECIAL_NETWORKS:
        if address in network:
            return label
    if address.is_private:
        return "a private-network"
    if address.is_reserved or not address.is_global:
        return "a reserved"
    return None


# --- Requests and results --------------------------------------------------------------------


def _checked_url(value: str | httpx.URL, *, source: str) -> httpx.URL:
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise InvalidURL(f"{value} is not a valid URL: {exc}", source) from exc
    if url.scheme not in ("http", "https"):
        raise UnsupportedScheme(f"refused {value}: only http and https URLs are fetched", source)
    if not url.raw_host:
        raise InvalidURL(f"{value} has no host", source)
    return url


def _join(base: httpx.URL, location: str) -> str | httpx.URL:
    try:
        return base.join(location)
    except httpx.InvalidURL:
        return location


def _origin(url: httpx.URL) -> tuple[str, bytes, int | None]:
    return url.scheme, url.raw_host, url.port


def _request_headers(extra: Mapping[str, str] | None, *, etag: str | None, last_modified: str | None) -> httpx.Headers:
    headers = httpx.Headers({"User-Agent": settings.FETCH_USER_AGENT, "Accept": "*/*"})
    headers.update(extra or {})
    # The body is decoded here, with a limit, so only encodings this module can decode are offered.
    headers["Accept-Encoding"] = "gzip, deflate, br"
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def _result(
    response: httpx.Response,
    *,
    url: str,
    etag: str | None,
    last_modified: str | None,
    limit: int,
    redirects: list[Redirect],
    started: float,
) -> FetchResult:
    final_url = str(response.url)
    not_modified = response.status_code == 304
    if not (response.is_success or not_modified):
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        advice = f"; it asks to retry after {retry_after} s" if retry_after is not None else ""
        raise HTTPStatusError(
            f"{final_url} answered {response.status_code} {response.reason_phrase}{advice}",
            final_url,
            response.status_code,
            retry_after,
        )
    body = b"" if not_modified else _read_body(response, limit=limit)
    return FetchResult(
        url=final_url,
        requested_url=url,
        status=response.status_code,
        headers=response.headers,
        body=body,
        content_type=response.headers.get("Content-Type", "").split(";")[0].strip().lower(),
        charset=response.charset_encoding,
        etag=response.headers.get("ETag") or (etag if not_modified else None),
        last_modified=response.headers.get("Last-Modified") or (last_modified if not_modified else None),
        not_modified=not_modified,
        redirects=tuple(redirects),
        elapsed=time.monotonic() - started,
    )


def _read_body(response: httpx.Response, *, limit: int) -> bytes:
    url = str(response.url)
    too_large = f"{url} sent more than {limit} bytes, the limit for this fetch; raise the limit if this is expected"
    declared = response.headers.get("Content-Length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(f"{too_large} (it declared {declared} bytes)", url)
    encodings = [
        name.strip().lower()
        for name in response.headers.get("Content-Encoding", "").split(",")
        if name.strip().lower() not in ("", "identity")
    ]
    unsupported = [name for name in encodings if name not in _DECODABLE]
    if unsupported:
        raise FetchError(f"{url} used Content-Encoding {', '.join(unsupported)}, which Newsreader does not accept", url)
    body = bytearray()
    try:
        for piece in _decoded(response.iter_raw(), encodings):
            body += piece
            if len(body) > limit:
                raise ResponseTooLarge(too_large, url)
    except (zlib.error, brotli.error) as exc:
        raise FetchError(f"{url} sent a body that does not decode as {', '.join(encodings)}: {exc}", url) from exc
    return bytes(body)


# --- Content decoding with bounded output ----------------------------------------------------


def _decoded(chunks: Iterable[bytes], encodings: list[str]) -> Iterator[bytes]:
    """Undo Content-Encoding (applied in the listed order, so undone in reverse), piece by piece."""
    for encoding in reversed(encodings):
        chunks = _decode(chunks, encoding)
    return iter(chunks)


def _decode(chunks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    if encoding == "br":
        decoder = brotli.Decompressor()
        for chunk in chunks:
            piece = decoder.process(chunk, output_buffer_limit=_PIECE)
            yield piece
            # A full piece means more output may be waiting for this input.
            while len(piece) >= _PIECE or not decoder.can_accept_more_data():
                piece = decoder.process(b"", output_buffer_limit=_PIECE)
                yield piece
        return
    decompressor = zlib.decompressobj(zlib.MAX_WBITS if encoding == "deflate" else 16 + zlib.MAX_WBITS)
    for index, chunk in enumerate(chunks):
        if index == 0 and encoding == "deflate" and len(chunk) >= 2 and not _is_zlib_header(chunk):
            # Some servers send raw deflate under this name.
            decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        pending = chunk
        while True:
            piece = decompressor.decompress(pending, _PIECE)
            pending = decompressor.unconsumed_tail
            if piece:
                yield piece
            if not pending and len(piece) < _PIECE:
                break


def _is_zlib_header(chunk: bytes) -> bool:
    return len(chunk) >= 2 and chunk[0] & 0x0F == 8 and int.from_bytes(chunk[:2], "big") % 31 == 0


# --- Connections pinned to checked addresses, within the deadline ----------------------------


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._ends - time.monotonic()

    def clip(self, timeout: float | None, error: type[Exception]) -> float:
        """The timeout for one socket operation: never past the deadline."""
        remaining = self.remaining()
        if remaining <= 0:
            raise error(f"the {self.seconds:g} s deadline has passed")
        return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, clock: _Deadline) -> None:
        self._stream = stream
        self._clock = clock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._clock.clip(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._clock.clip(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = self._clock.clip(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout), self._clock)

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to addresses checked for the host, never by resolving the name again.
    TLS still verifies the certificate against the host name, which httpcore passes as SNI."""

    def __init__(self, clock: _Deadline) -> None:
        self._clock = clock
        self._pins: dict[str, list[str]] = {}
        self._tcp = httpcore.SyncBackend()

    def pin(self, url: httpx.URL, addresses: list[str]) -> None:
        self._pins[url.raw_host.decode("ascii")] = addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if host not in self._pins:
            raise BlockedAddress(f"refused to connect to {host}: its addresses were not checked", host)
        failure: Exception | None = None
        for address in self._pins[host]:
            try:
                stream = self._tcp.connect_tcp(
                    address,
                    port,
                    timeout=self._clock.clip(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self._clock)
        raise failure or httpcore.ConnectError(f"no address to connect to for {host}")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport over a connection pool that uses the pinned backend. httpx 0.28 takes no
    network backend as an argument, so the pool it would build is replaced by ours."""

    def __init__(self, *, backend: _PinnedBackend, ssl_context: ssl.SSLContext) -> None:
        self._pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=backend)


@lru_cache(maxsize=4)
def _ssl_context(ca_bundle: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_bundle or certifi.where())


def _allowlist() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    hosts: set[str] = set()
    networks = []
    for entry in settings.FETCH_ALLOWED_NETWORKS:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            hosts.add(entry.strip().rstrip(".").lower())
    return hosts, networks


def _unmapped(address: IPAddress) -> IPAddress:
    return (address.ipv4_mapped or address) if address.version == 6 else address


@contextmanager
def _translated_errors(url: httpx.URL, clock: _Deadline) -> Iterator[None]:
    try:
        yield
    except httpx.ConnectTimeout as exc:
        if clock.remaining() <= 0:
            raise FetchTimeout(f"{url} did not finish within the {clock.seconds:g} s deadline", str(url)) from exc
        raise FetchTimeout(
            f"could not connect to {url.host} within {settings.FETCH_CONNECT_TIMEOUT_SECONDS:g} s", str(url)
        ) from exc
    except httpx.TimeoutException as exc:
        raise FetchTimeout(f"{url} did not finish within the {clock.seconds:g} s deadline", str(url)) from exc
    except httpx.HTTPError as exc:
        raise NetworkError(f"could not fetch {url}: {exc}", str(url)) from exc
