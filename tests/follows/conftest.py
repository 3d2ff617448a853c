"""Fixtures for the follows tests: a small newsroom with sections, a continent and its country, sources and tags."""

from types import SimpleNamespace

import pytest

from tests.factories import RegionFactory, SectionFactory, SourceFactory, TagFactory


@pytest.fixture
def newsroom(db):
    europe = RegionFactory(name="Europe", slug="europe")
    return SimpleNamespace(
        sport=SectionFactory(name="Sport", slug="sport"),
        science=SectionFactory(name="Science", slug="science"),
        europe=europe,
        norway=RegionFactory(name="Norway", slug="norway", parent=europe),
        harbour_news=SourceFactory(name="Harbour News", slug="harbour-news"),
        valley_times=SourceFactory(name="Valley Times", slug="valley-times"),
        ferries=TagFactory(name="Ferries", slug="ferries"),
        tides=TagFactory(name="Tides", slug="tides"),
    )
