"""The one answer to "which address is this request from?", for rate limits, view counts and comment hashes.

Behind a reverse proxy REMOTE_ADDR is the proxy's address and the client's is in X-Forwarded-For,
which anybody can also send. The header is believed only as far as it was written by proxies the
operator named: TRUSTED_PROXIES (networks) and TRUSTED_PROXY_COUNT (hops nearest to us).
"""

import functools
import ipaddress

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(request: HttpRequest) -> str:
    """The client's address, normalised (IPv4-mapped IPv6 as IPv4); "" when the request names none.

    The chain is X-Forwarded-For followed by REMOTE_ADDR. Walking it from the right, a hop is
    skipped while it is one of the first TRUSTED_PROXY_COUNT hops or lies in TRUSTED_PROXIES; the
    first hop not skipped is the client. An entry that is not an address ends the walk at the last
    proxy passed, so a garbled or hostile header never chooses the answer.
    """
    peer = parse_address(request.META.get("REMOTE_ADDR", ""))
    if peer is None:
        return ""
    networks = trusted_networks()
    count = settings.TRUSTED_PROXY_COUNT
    if not networks and count <= 0:
        return str(peer)

    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    entries = [entry for entry in forwarded.split(",") if entry.strip()]
    hop = peer
    for position in range(len(entries) + 1):
        if not (position < count or _is_trusted(hop, networks)):
            return str(hop)
        if position == len(entries):
            break
        previous = parse_address(entries[-1 - position])
        if previous is None:
            break
        hop = previous
    # Every hop was a proxy (or the chain broke off): the farthest one known is as near the client as we get.
    return str(hop)


def parse_address(text: str) -> IPAddress | None:
    """An address from REMOTE_ADDR or one X-Forwarded-For entry; None when it is not one.

    Accepts a port after IPv4 ("203.0.113.5:4711") and bracketed IPv6 with or without one
    ("[2001:db8::1]:443"), as some load balancers write them.
    """
    text = text.strip()
    if text.startswith("["):
        text, bracket, _port = text[1:].partition("]")
        if not bracket:
            return None
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def trusted_networks() -> tuple[IPNetwork, ...]:
    """TRUSTED_PROXIES parsed; raises ImproperlyConfigured naming an entry that is not a network."""
    return _parse_networks(tuple(settings.TRUSTED_PROXIES))


@functools.lru_cache(maxsize=8)
def _parse_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    networks = []
    for entry in filter(None, (entry.strip() for entry in entries)):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as error:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES entry {entry!r} is not an IP network: {error}. "
                'Write comma-separated networks in CIDR notation, e.g. "127.0.0.1/32,10.0.0.0/8".'
            ) from error
    return tuple(networks)


def _is_trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == network.version and address in network for network in networks)
