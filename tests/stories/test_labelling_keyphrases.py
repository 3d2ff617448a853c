"""Tags: key-phrase extraction and normalisation against the site's existing tags."""

from stories.labelling.keyphrases import clean_tag, extract_keyphrases, normalise_tags, suggest_tags, tag_key

EV_STORY_TITLE = "Electric car sales jump as battery prices fall"
EV_STORY_TEXT = (
    "LONDON (Reuters) - Sales of electric vehicles in Britain rose by a third last year, the Society of Motor "
    "Manufacturers and Traders said on Thursday. EVs made up a fifth of new cars. Battery prices have fallen "
    "sharply, and charging points are spreading along motorways. The Bank of England said cheaper batteries "
    "were helping to curb inflation. Electric vehicles still cost more up front than petrol cars."
)


def test_ev_evs_and_electric_vehicles_become_one_tag():
    assert normalise_tags(["EV", "EVs", "electric vehicles"]) == ["Electric vehicles"]
    assert normalise_tags(["electric vehicles", "EVs", "EV"]) == ["Electric vehicles"]
    assert tag_key("EVs") == tag_key("EV") == "ev"
    assert tag_key("Batteries") == tag_key("battery")


def test_the_sites_existing_spelling_wins():
    assert normalise_tags(["EVs", "battery"], existing_tags=["Electric vehicles", "Batteries"]) == [
        "Electric vehicles",
        "Batteries",
    ]
    assert normalise_tags(["electric vehicles"], existing_tags=["EV"]) == ["EV"]
    assert normalise_tags(["artificial intelligence"], existing_tags=["AI"]) == ["AI"]


def test_at_most_six_tags_are_kept_best_first():
    tags = normalise_tags([f"Topic {letter}" for letter in "abcdefghij"])
    assert tags == ["Topic a", "Topic b", "Topic c", "Topic d", "Topic e", "Topic f"]


def test_tag_names_are_cleaned_of_markup_and_capped():
    assert clean_tag("  <b>wind   farms</b>; ") == "Wind farms"
    assert clean_tag("<script>alert(1)</script>") == ""
    assert clean_tag("{{ template }} [link]") == "Template link"
    assert clean_tag("x" * 200) == "X" + "x" * 59
    assert clean_tag("\u200b") == ""
    assert normalise_tags(["", "   ", "!!!"]) == []


def test_key_phrases_find_the_names_and_topics_of_a_story():
    phrases = [name for name, _score in extract_keyphrases(title=EV_STORY_TITLE, text=EV_STORY_TEXT)]

    assert phrases[0] == "Electric vehicles"
    assert "Society of Motor Manufacturers and Traders" in phrases
    assert "Bank of England" in phrases
    assert "England" not in phrases  # inside a longer name that scores as well
    assert "LONDON" not in phrases and "Reuters" not in phrases  # the dateline is not a subject
    assert "Thursday" not in phrases


def test_suggested_tags_leave_out_the_stories_region_and_merge_with_existing_tags():
    tags, confidence = suggest_tags(
        title=EV_STORY_TITLE, text=EV_STORY_TEXT, existing_tags=["EV"], exclude=lambda name: name == "Britain"
    )

    assert tags[0] == "EV"
    assert "Britain" not in tags
    assert len(tags) <= 6
    assert 0 < confidence <= 0.9


def test_a_story_without_words_gets_no_tags():
    assert suggest_tags(title="", text="") == ([], 0.0)
