"""Personal parts: a page shared by every reader carries each reader's parts as marked visitor versions,
replaced per request by the reader's own, all occurrences of a part at once."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from newsreader import personal


class Reader:
    is_authenticated = True

    def __init__(self, name: str) -> None:
        self.username = name


calls: list[list[dict[str, str]]] = []


@personal.part("greeting")
def greeting(fill: personal.Fill, occurrences: list[dict[str, str]]) -> list[str]:
    calls.append(occurrences)
    user = fill.request.user
    name = user.username if user.is_authenticated else "visitor"
    return [f"Hello <{name}> on {arguments['story']}" for arguments in occurrences]


def request_for(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


@pytest.fixture(autouse=True)
def no_calls():
    calls.clear()


def test_a_visitor_gets_their_version_between_markers():
    html = personal.render(request_for(AnonymousUser()), "greeting", story=7)

    assert html == "<!--nr:p greeting story=7-->Hello &lt;visitor&gt; on 7<!--/nr:p-->"


def test_a_signed_in_render_has_no_markers():
    assert personal.render(request_for(Reader("ana")), "greeting", story=7) == "Hello &lt;ana&gt; on 7"


def test_filling_replaces_every_occurrence_with_one_call_and_escapes_the_reader_s_values():
    visitor = request_for(AnonymousUser())
    first, second = personal.render(visitor, "greeting", story=1), personal.render(visitor, "greeting", story=2)
    page = f"<main>{first}<p>shared</p>{second}</main>"
    calls.clear()

    filled = personal.fill(page, request_for(Reader("<b>ben</b>")))

    assert filled == (
        "<main>Hello &lt;&lt;b&gt;ben&lt;/b&gt;&gt; on 1<p>shared</p>Hello &lt;&lt;b&gt;ben&lt;/b&gt;&gt; on 2</main>"
    )
    assert calls == [[{"story": "1"}, {"story": "2"}]]


def test_a_part_nobody_fills_any_more_keeps_its_visitor_version():
    page = personal.marked("retired_part", "<p>Log in</p>", story=3)

    assert personal.fill(page, request_for(Reader("ana"))) == "<p>Log in</p>"


def test_a_page_without_parts_is_left_as_it_is():
    assert personal.fill("<p>nothing personal</p>", request_for(Reader("ana"))) == "<p>nothing personal</p>"


@pytest.mark.parametrize("value", ["a b", "x-->", "<script>", "é"])
def test_arguments_are_numbers_and_slugs_only(value):
    with pytest.raises(ValueError, match="numbers or slugs"):
        personal.render(request_for(AnonymousUser()), "greeting", story=value)


def test_what_a_process_keeps_expires_and_the_least_recently_used_goes_first(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(personal.time, "monotonic", lambda: now[0])
    kept = personal.KeptHere(size=2, seconds=60)
    kept.set_many({"a": 1, "b": 2})
    kept.get_many(["a"])

    kept.set_many({"c": 3})

    assert kept.get_many(["a", "b", "c"]) == {"a": 1, "c": 3}
    now[0] += 61
    assert kept.get_many(["a", "c"]) == {}
    assert kept.get("a", lambda: 4) == 4 and kept.get("a", lambda: 5) == 4


def test_a_fact_over_the_limit_is_unknown_not_cut_short(monkeypatch):
    monkeypatch.setattr(personal, "READER_FACT_LIMIT", 3)

    assert personal.limited_ids([1, 2, 3]) == frozenset({1, 2, 3})
    assert personal.limited_ids([1, 2, 3, 4]) is None
