"""Bad query strings and form fields are 400s: text PostgreSQL cannot hold (a NUL, a lone surrogate)
or bytes that are not valid in their charset are refused before any view queries with them; valid
requests, CSRF and uploads work as before."""

import uuid
from urllib.parse import urlencode

import pytest
from django.test import Client

from comments.models import Comment
from tests.conftest import PASSWORD
from tests.factories import StoryFactory

pytestmark = pytest.mark.django_db

NUL = "\x00"


def assert_bad_request(response) -> None:
    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert b"not valid" in response.content


@pytest.mark.parametrize("parameter", ["q", "section", "tag", "region", "source", "page"])
def test_a_nul_in_any_list_filter_is_a_400(client, parameter):
    assert_bad_request(client.get("/", {parameter: f"harbour{NUL}"}))


@pytest.mark.parametrize(
    "query",
    [
        "q=%ff",  # not UTF-8
        "q=caf%E9",  # Latin-1
        "q=%ed%a0%80",  # a surrogate, encoded as UTF-8 would encode it
        "%00=harbour",  # the name, not the value
    ],
)
def test_invalid_text_in_a_query_string_is_a_400(client, query):
    assert_bad_request(client.get(f"/?{query}"))


def test_a_charset_that_decodes_to_a_lone_surrogate_is_a_400(client):
    response = client.get("/?q=%5Cud800", CONTENT_TYPE="text/plain; charset=unicode_escape")

    assert_bad_request(response)


def test_story_and_thread_pages_refuse_bad_parameters_too(client):
    story = StoryFactory()

    assert_bad_request(client.get(story.get_absolute_url(), {"q": NUL}))
    assert_bad_request(client.get(f"/comments/{story.slug}/thread/", {"sort": NUL}))


def test_valid_text_still_searches(client):
    StoryFactory(title="Café owners welcome the harbour tram")

    response = client.get("/", {"q": "café"})

    assert response.status_code == 200
    assert "Café owners welcome the harbour tram" in response.content.decode()


@pytest.fixture
def signed_in(client, reader):
    client.force_login(reader)
    return client


def comment_form(body: str) -> dict:
    return {"body": body, "idempotency_key": str(uuid.uuid4())}


def test_a_nul_in_a_comment_form_field_is_a_400_as_multipart_and_as_urlencoded(signed_in):
    story = StoryFactory()
    url = f"/comments/{story.slug}/post/"

    multipart = signed_in.post(url, comment_form(f"Hello{NUL}harbour"))
    urlencoded = signed_in.post(
        url, urlencode(comment_form(f"Hello{NUL}harbour")), content_type="application/x-www-form-urlencoded"
    )

    assert_bad_request(multipart)
    assert_bad_request(urlencoded)
    assert not Comment.objects.exists()


def test_invalid_utf8_in_an_urlencoded_form_is_a_400(signed_in):
    story = StoryFactory()

    response = signed_in.post(
        f"/comments/{story.slug}/post/", b"body=caf%E9", content_type="application/x-www-form-urlencoded"
    )

    assert_bad_request(response)


def test_a_nul_in_the_login_form_is_a_400(client, reader):
    assert_bad_request(client.post("/accounts/login/", {"login": f"{reader.email}{NUL}", "password": PASSWORD}))


def test_a_valid_comment_posts_with_csrf_enforced_and_a_forged_one_is_still_refused(reader):
    story = StoryFactory()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(reader)
    browser.get(f"/comments/{story.slug}/")
    token = browser.cookies["csrftoken"].value

    forged = browser.post(f"/comments/{story.slug}/post/", comment_form("No token"))
    posted = browser.post(
        f"/comments/{story.slug}/post/", {**comment_form("With the token"), "csrfmiddlewaretoken": token}
    )

    assert forged.status_code == 403
    assert posted.status_code == 302
    assert Comment.objects.get().body_source == "With the token"
