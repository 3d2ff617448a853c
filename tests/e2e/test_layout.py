"""The page frame at a laptop's width (1280 px) and a phone's (390 px): the header, the section nav, the
cards, the notices and the reading column line up, nothing touches, and nothing scrolls sideways; and
every page has its icon."""

import pytest
from django.templatetags.static import static
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.factories import CommentFactory, SectionFactory, StoryFactory, UserFactory

WIDTHS = [1280, 390]
# Below this, two boxes read as touching.
MIN_GAP = 16


@pytest.fixture
def scene(transactional_db):
    section = SectionFactory(name="Climate", slug="climate")
    story = StoryFactory(title="Ferries switch to shore power", section=section)
    StoryFactory(title="A quieter harbour at night", section=section)
    author = UserFactory(username="\u0646\u0627\u062f\u064a\u0629")  # a right-to-left public name
    comment = CommentFactory(story=story, author=author, body_html="<p>\u0645\u0631\u062d\u0628\u0627 and hello</p>")
    return story, comment, UserFactory()


def box(page, selector: str) -> dict:
    return page.locator(selector).first.evaluate(
        "element => { const r = element.getBoundingClientRect();"
        " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width}; }"
    )


def content_left(page, selector: str) -> float:
    """Where the box's content starts, inside its padding: what the eye lines up."""
    return page.locator(selector).first.evaluate(
        "element => element.getBoundingClientRect().left + parseFloat(getComputedStyle(element).paddingLeft)"
    )


def assert_no_sideways_scroll(page) -> None:
    scroll_width, client_width = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll_width <= client_width, f"{page.url} scrolls sideways: {scroll_width} > {client_width}"


def log_in(page, email: str, next_url: str) -> None:
    page.goto(f"/accounts/login/?next={next_url}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width", WIDTHS)
def test_page_frame_lines_up_and_leaves_room(scene, browser_page, width):
    story, comment, reader = scene
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    failed = []
    page.on("response", lambda response: response.status >= 400 and failed.append(response.url))

    page.goto("/")
    logo = box(page, ".site-name")
    first_section = box(page, ".section-nav a")
    first_card = box(page, ".card")
    header = box(page, ".site-header")
    assert first_section["left"] == pytest.approx(logo["left"], abs=1)
    assert first_card["left"] == pytest.approx(logo["left"], abs=1)
    assert first_card["top"] - header["bottom"] >= MIN_GAP
    assert_no_sideways_scroll(page)

    page.goto("/accounts/login/")
    button = box(page, "main button[type=submit]")
    footer = box(page, ".site-footer")
    assert footer["top"] - button["bottom"] >= MIN_GAP
    assert_no_sideways_scroll(page)

    # Logging in from the story leaves a notice above its reading column, as wide as the column.
    log_in(page, reader.email, story.get_absolute_url())
    expect(page.locator(".message")).to_contain_text("Logged in as")
    column = box(page, ".story")
    notice = box(page, ".message")
    assert notice["left"] == pytest.approx(column["left"], abs=1)
    assert notice["width"] == pytest.approx(column["width"], abs=1)
    assert_no_sideways_scroll(page)

    page.goto(comment.get_absolute_url())
    heading = box(page, "main h1")
    thread = box(page, ".comments")
    assert heading["left"] == pytest.approx(thread["left"], abs=1)
    assert heading["right"] <= thread["right"] + 1
    assert_no_sideways_scroll(page)
    # A right-to-left name or comment is shown isolated, like <bdi>: it cannot reorder the text around it.
    assert page.locator(".comment-author").first.evaluate("e => getComputedStyle(e).unicodeBidi") == "isolate"
    assert page.locator(".comment-body").first.evaluate("e => getComputedStyle(e).unicodeBidi") == "plaintext"
    assert failed == [], "every page loads without a failing request (the favicon included)"


@pytest.mark.django_db
def test_favicon_ico_answers_from_our_static_icon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"] == static("favicon.ico")
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert b"".join(icon.streaming_content).startswith(b"\x00\x00\x01\x00")  # the ICO header
    assert f'<link rel="icon" href="{static("favicon.svg")}" type="image/svg+xml">' in client.get("/").content.decode()
