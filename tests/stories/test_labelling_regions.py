"""Regions: the gazetteer of countries, capitals, cities and demonyms, with the source's hint as a prior."""

from stories.labelling.regions import gazetteer, guess_region


def region(title: str, text: str, hint: str | None = None) -> str | None:
    found, _confidence = guess_region(title=title, text=text, source_hint=hint)
    return str(found) if found else None


def test_a_story_from_beijing_is_asia_china():
    found, confidence = guess_region(
        title="Smog closes schools", text="Schools in Beijing stayed shut on Tuesday as smog covered the city."
    )
    assert str(found) == "Asia / China"
    assert found.country_code == "CN"
    assert 0 < confidence < 1


def test_countries_capitals_cities_states_and_demonyms_are_recognised():
    assert region("Ferry strike", "Unions in Norway called a strike.") == "Europe / Norway"
    assert region("Tea growers", "Kenyan farmers near the highlands tried new seeds.") == "Africa / Kenya"
    assert region("Metro opens", "A new metro line opened in São Paulo.") == "Americas / Brazil"
    assert region("Metro opens", "A new metro line opened in Sao Paulo.") == "Americas / Brazil"
    assert region("Drought", "Farmers in Texas face a third dry summer.") == "Americas / United States"
    assert region("Rates held", "The U.S. central bank kept rates on hold.") == "Americas / United States"
    assert region("Vote", "Britain's MPs voted late into the night.") == "Europe / United Kingdom"


def test_longer_names_win_over_the_places_inside_them():
    assert region("Floods", "Rain swept New South Wales for a week.") == "Oceania / Australia"
    assert region("Talks", "Leaders from across Latin America met on trade.") is None


def test_several_countries_of_one_continent_give_the_continent():
    assert region("Farm talks", "Ministers from France, Germany, Italy and Spain met on subsidies.") == "Europe"


def test_the_sources_region_is_a_prior_that_the_text_can_override():
    assert region("Ferries switch to shore power", "Twelve ferries now charge at night.", "Europe / Norway") == (
        "Europe / Norway"
    )
    _found, prior_only = guess_region(title="Ferries", text="They charge at night.", source_hint="Europe / Norway")
    _found, with_text = guess_region(title="Ferries", text="Ferries in Norway charge at night.", source_hint="NO")
    assert prior_only < with_text
    assert region("Tea growers", "Smallholders near Nairobi in Kenya test probes.", "Europe / Norway") == (
        "Africa / Kenya"
    )
    assert region("Quiet day", "Nothing much happened.", "Asia") == "Asia"


def test_everyday_words_and_names_do_not_make_a_place():
    assert region("A nice day", "Reading is a pleasure. Most people agree it is nice.") is None
    assert region("Nothing here", "The committee met and agreed a plan.") is None


def test_resolve_reads_the_ways_operators_write_regions():
    places = gazetteer()
    assert str(places.resolve("Asia / China")) == "Asia / China"
    assert str(places.resolve("CN")) == "Asia / China"
    assert str(places.resolve("chn")) == "Asia / China"
    assert str(places.resolve("Europe")) == "Europe"
    assert str(places.resolve("South America")) == "Americas"
    assert places.resolve("Narnia") is None
    assert places.resolve("") is None


def test_place_names_are_told_apart_from_codes_that_look_like_words():
    places = gazetteer()
    assert places.is_place("China") and places.is_place("Chinese") and places.is_place("UK")
    assert places.is_place("Europe")
    assert not places.is_place("AI")  # Anguilla's country code, but a tag about artificial intelligence
    assert not places.is_place("Electric vehicles")
