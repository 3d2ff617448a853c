"""The client's address behind reverse proxies: believed only as far as trusted proxies wrote it, and
used by everything keyed on an address (allauth's rate limits, view counts, comment address hashes)."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from comments.models import Comment, ModerationRule
from newsreader.clientaddr import client_address
from stories import localpages, viewcounts
from stories.models import Story
from stories.tasks import flush_story_views
from tests.conftest import PASSWORD
from tests.factories import StoryFactory, UserFactory

PROXY = "10.0.0.2"


def request_from(rf, remote_addr: str, forwarded_for: str | None = None):
    headers = {"REMOTE_ADDR": remote_addr}
    if forwarded_for is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return rf.get("/", **headers)


@pytest.fixture
def behind_proxies(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "2001:db8:ffff::/48"]
    settings.TRUSTED_PROXY_COUNT = 0
    return settings


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says(rf, settings):
    settings.TRUSTED_PROXIES, settings.TRUSTED_PROXY_COUNT = [], 0

    assert client_address(request_from(rf, "203.0.113.9", "198.51.100.7")) == "203.0.113.9"


def test_spoofed_header_from_an_untrusted_client_is_ignored(rf, behind_proxies):
    assert client_address(request_from(rf, "203.0.113.9", "198.51.100.7, 10.0.0.3")) == "203.0.113.9"


def test_a_client_behind_a_trusted_proxy_is_taken_from_the_header(rf, behind_proxies):
    assert client_address(request_from(rf, PROXY, "198.51.100.7")) == "198.51.100.7"


def test_chained_proxies_are_walked_from_the_right_and_what_the_client_wrote_is_ignored(rf, behind_proxies):
    # The client sent "X-Forwarded-For: 6.6.6.6"; two of our proxies appended the hops they saw.
    request = request_from(rf, PROXY, "6.6.6.6, 198.51.100.7, 10.0.0.3")

    assert client_address(request) == "198.51.100.7"


def test_trusted_proxy_count_skips_that_many_hops_whatever_their_addresses(rf, settings):
    settings.TRUSTED_PROXIES, settings.TRUSTED_PROXY_COUNT = [], 2

    assert client_address(request_from(rf, "192.0.2.10", "6.6.6.6, 198.51.100.7, 192.0.2.20")) == "198.51.100.7"
    # Reached the nearest proxy without passing the farther one: the farthest hop known.
    assert client_address(request_from(rf, "192.0.2.10", "198.51.100.7")) == "198.51.100.7"
    assert client_address(request_from(rf, "192.0.2.10")) == "192.0.2.10"


def test_count_and_networks_together_skip_the_counted_hops_then_the_trusted_ones(rf, behind_proxies):
    behind_proxies.TRUSTED_PROXY_COUNT = 1  # e.g. a CDN at any address, then our own proxy in 10/8

    assert client_address(request_from(rf, "192.0.2.10", "6.6.6.6, 198.51.100.7, 10.0.0.3")) == "198.51.100.7"


def test_ipv6_clients_and_proxies_are_handled_and_normalised(rf, behind_proxies):
    assert client_address(request_from(rf, "2001:db8:ffff::1", "2001:DB8:0:0::0042")) == "2001:db8::42"
    assert client_address(request_from(rf, "2001:db8:ffff::1", "[2001:db8::42]:443")) == "2001:db8::42"
    assert client_address(request_from(rf, "2001:db8:aaaa::1", "198.51.100.7")) == "2001:db8:aaaa::1"


def test_ipv4_mapped_addresses_count_as_the_ipv4_address(rf, behind_proxies):
    # A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d; it must match 10.0.0.0/8 all the same.
    assert client_address(request_from(rf, "::ffff:10.0.0.2", "::ffff:198.51.100.7")) == "198.51.100.7"
    assert client_address(request_from(rf, "::ffff:203.0.113.9")) == "203.0.113.9"


def test_malformed_entries_never_choose_the_address(rf, behind_proxies):
    # Garbage where a trusted proxy's hop should be: stop at that proxy rather than believe what lies beyond.
    assert client_address(request_from(rf, PROXY, "198.51.100.7, unknown")) == PROXY
    assert client_address(request_from(rf, PROXY, "198.51.100.7, 10.0.0.3, <script>")) == PROXY
    assert client_address(request_from(rf, PROXY, "6.6.6.6, garbage, 198.51.100.7")) == "198.51.100.7"
    assert client_address(request_from(rf, PROXY, " , ,198.51.100.7")) == "198.51.100.7"
    assert client_address(request_from(rf, PROXY, "198.51.100.7:4711")) == "198.51.100.7"
    assert client_address(request_from(rf, "not an address", "198.51.100.7")) == ""


def test_a_request_only_through_trusted_hops_is_from_the_farthest_of_them(rf, behind_proxies):
    assert client_address(request_from(rf, PROXY, "10.0.0.7, 10.0.0.3")) == "10.0.0.7"
    assert client_address(request_from(rf, PROXY)) == PROXY


def test_a_trusted_proxy_entry_that_is_not_a_network_is_refused_with_the_entry_named(rf, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "proxy.internal"]

    with pytest.raises(ImproperlyConfigured, match=r"'proxy\.internal'"):
        client_address(request_from(rf, PROXY, "198.51.100.7"))


# --- Everything keyed on an address uses it ------------------------------------------------


def via_proxy(client_ip: str, **extra) -> Client:
    return Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=client_ip, HTTP_USER_AGENT="test browser", **extra)


def sign_up(client: Client, n: int):
    data = {"email": f"reader{n}@harbour.test", "username": f"reader{n}", "password1": PASSWORD, "password2": PASSWORD}
    return client.post("/accounts/signup/", data)


@pytest.mark.django_db
def test_two_readers_behind_the_same_proxy_are_not_rate_limited_together(behind_proxies):
    behind_proxies.ACCOUNT_RATE_LIMITS = {**behind_proxies.ACCOUNT_RATE_LIMITS, "signup": "3/m/ip"}
    flooder, neighbour = via_proxy("198.51.100.7"), via_proxy("198.51.100.8")

    flooded = [sign_up(flooder, n).status_code for n in range(4)]
    neighbours = sign_up(neighbour, 10).status_code

    assert flooded[-1] == 429
    assert neighbours == 302


@pytest.mark.django_db
def test_a_client_cannot_escape_the_rate_limit_by_forging_the_header(behind_proxies):
    behind_proxies.ACCOUNT_RATE_LIMITS = {**behind_proxies.ACCOUNT_RATE_LIMITS, "signup": "3/m/ip"}
    direct = Client(REMOTE_ADDR="203.0.113.9")

    statuses = [sign_up(direct, n).status_code for n in range(4)] + [
        direct.post("/accounts/signup/", {}, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(3)
    ]

    assert statuses[3:] == [429] * 4


@pytest.mark.django_db
def test_failed_logins_are_counted_per_client_behind_the_proxy(behind_proxies):
    behind_proxies.ACCOUNT_RATE_LIMITS = {**behind_proxies.ACCOUNT_RATE_LIMITS, "login_failed": "2/m/ip"}
    reader = UserFactory()
    guesser, neighbour = via_proxy("198.51.100.7"), via_proxy("198.51.100.8")

    for _ in range(3):
        guesser.post("/accounts/login/", {"login": "someone@harbour.test", "password": "guess"})
    locked_out = guesser.post("/accounts/login/", {"login": reader.email, "password": PASSWORD})
    signed_in = neighbour.post("/accounts/login/", {"login": reader.email, "password": PASSWORD})

    assert locked_out.status_code == 429
    assert signed_in.status_code == 302


@pytest.mark.django_db
def test_readers_behind_the_same_proxy_are_counted_as_different_readers(behind_proxies, rf):
    story = StoryFactory()

    via_proxy("198.51.100.7").get(story.get_absolute_url())
    via_proxy("198.51.100.7").get(story.get_absolute_url())  # the same reader again (from the page cache, too)
    via_proxy("198.51.100.8").get(story.get_absolute_url())
    localpages.send_views()
    flush_story_views()

    assert Story.objects.get(pk=story.pk).view_count == 2
    direct = rf.get("/", REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="test browser")
    proxied = rf.get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.7", HTTP_USER_AGENT="test browser")
    assert viewcounts.visitor_key(direct) == viewcounts.visitor_key(proxied)


@pytest.mark.django_db
def test_a_comment_keeps_the_hash_of_the_commenters_address_not_the_proxys(behind_proxies):
    ModerationRule.objects.all().delete()
    story = StoryFactory()
    ana, bea = UserFactory(username="ana"), UserFactory(username="bea")
    proxied, direct = via_proxy("198.51.100.23"), Client(REMOTE_ADDR="198.51.100.23")
    proxied.force_login(ana)
    direct.force_login(bea)

    proxied.post(f"/comments/{story.slug}/post/", {"body": "Through the proxy"})
    direct.post(f"/comments/{story.slug}/post/", {"body": "Straight in"})

    hashes = {comment.author.username: comment.author_ip_hash for comment in Comment.objects.select_related("author")}
    assert hashes["ana"] and hashes["ana"] == hashes["bea"]
