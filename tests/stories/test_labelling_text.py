"""Language, dek and reading time: the plain-text parts of every label."""

from stories.labelling.text import detect_language, extractive_dek, split_sentences
from stories.models import reading_minutes


def test_language_is_detected_on_a_paragraph():
    samples = {
        "en": "The government announced new measures on Tuesday to help families with rising energy bills.",
        "fr": "Le gouvernement a annoncé mardi de nouvelles mesures pour aider les familles face aux factures.",
        "de": "Die Regierung hat am Dienstag neue Maßnahmen angekündigt, um Familien bei den Energiekosten zu helfen.",
        "es": "El gobierno anunció el martes nuevas medidas para ayudar a las familias con las facturas de energía.",
        "pt": "O governo anunciou na terça-feira novas medidas para ajudar as famílias com as contas de energia.",
    }
    for code, sample in samples.items():
        detected, confidence = detect_language(sample)
        assert detected == code
        assert confidence > 0.5


def test_a_few_words_give_a_low_language_confidence():
    _code, confidence = detect_language("Rugby")
    assert confidence < 0.2
    assert detect_language("2024 — 17:30") == ("und", 0.0)


def test_sentences_keep_abbreviations_inside():
    assert split_sentences("Mr. Smith went to Washington. He met Dr. Jones at 5 p.m. on Friday. It rained.") == [
        "Mr. Smith went to Washington.",
        "He met Dr. Jones at 5 p.m. on Friday.",
        "It rained.",
    ]


def test_dek_takes_the_first_informative_sentences_and_skips_bylines_and_datelines():
    text = (
        "By Jane Smith. Photo: Harbour Ledger. LISBON (Harbour Ledger) - The city reopened its oldest tram line "
        "on Monday. Battery cars now climb the hill. A third sentence that the dek does not need at all."
    )
    assert extractive_dek(title="Tram line reopens", text=text) == (
        "The city reopened its oldest tram line on Monday. Battery cars now climb the hill."
    )


def test_dek_is_one_sentence_when_the_first_is_long_and_never_exceeds_the_limit():
    long_sentence = "The council " + "agreed a very long list of measures and " * 3 + "went home late on Friday."
    assert extractive_dek(title="Council", text=f"{long_sentence} Second sentence here for sure.") == long_sentence
    assert len(extractive_dek(title="x", text="word " * 400 + ".")) <= 300


def test_dek_skips_a_sentence_that_repeats_the_headline():
    text = "Ferries switch to shore power. Twelve ferries now charge at their home quays each night."
    assert extractive_dek(title="Ferries switch to shore power", text=text) == (
        "Twelve ferries now charge at their home quays each night."
    )


def test_reading_minutes_use_the_story_pages_rate():
    assert reading_minutes("") == 1
    assert reading_minutes("word " * 230) == 1
    assert reading_minutes("word " * 1150) == 5
