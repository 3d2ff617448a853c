"""Plain-text helpers every labeller shares: sentences, the extractive dek, language and reading time."""

import functools
import re
import unicodedata

DEK_MAX_CHARS = 300
# The dek comes from the opening; splitting a long article into sentences beyond it is wasted work.
DEK_SAMPLE_CHARS = 2000
# A first sentence shorter than this is usually a dateline or a teaser; the dek then takes two.
DEK_SHORT_SENTENCE_CHARS = 120
LANGUAGE_SAMPLE_CHARS = 1000
# Below this many letters the language model guesses; we say so through a low confidence.
LANGUAGE_MIN_LETTERS = 40

_ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "gen",
        "gov",
        "sen",
        "rep",
        "col",
        "lt",
        "sgt",
        "capt",
        "inc",
        "ltd",
        "co",
        "corp",
        "vs",
        "no",
        "jan",
        "feb",
        "mar",
        "apr",
        "aug",
        "sept",
        "sep",
        "oct",
        "nov",
        "dec",
        "u.s",
        "u.k",
        "e.g",
        "i.e",
        "a.m",
        "p.m",
    }
)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")
_BOILERPLATE = re.compile(
    r"^(by\s+[A-Z][\w.'-]+(\s+[A-Z][\w.'-]+){0,3}\s*$|photo\b|image\b|picture\b|video\b|listen\b|watch\b|"
    r"share\b|advertisement\b|click\b|subscribe\b|sign up\b|read more\b|updated\b|published\b|"
    r"copyright\b|©|all rights reserved)",
    re.IGNORECASE,
)
# "LONDON (Reuters) - ", "Lisbon, Portugal \u2014 ": capitals or capitalised words, an optional agency, a dash or colon.
_DATELINE = re.compile(
    r"^(?:[A-Z][A-Z .,'-]{1,40}|(?:[A-Z][a-z]+[ ,]*){1,4})\s?(?:\([^)]{1,40}\))?\s?[-\u2013\u2014:]\s+"
)


def normalise_whitespace(text: str) -> str:
    return " ".join(text.split())


def split_sentences(text: str) -> list[str]:
    """Sentences of plain `text`, keeping abbreviations such as "Mr." and "U.S." inside their sentence."""
    text = normalise_whitespace(text)
    if not text:
        return []
    pieces = _SENTENCE_END.split(text)
    sentences: list[str] = []
    for piece in pieces:
        if sentences and _ends_with_abbreviation(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return [sentence.strip() for sentence in sentences if sentence.strip()]


def strip_dateline(text: str) -> str:
    """`text` without a leading dateline such as "LONDON (Reuters) - "."""
    return _DATELINE.sub("", text, count=1)


def _ends_with_abbreviation(sentence: str) -> bool:
    last_word = sentence.rsplit(" ", 1)[-1].rstrip(".").lower()
    return last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha())


def _is_informative(sentence: str) -> bool:
    words = sentence.split()
    if len(words) < 6 or _BOILERPLATE.match(sentence):
        return False
    letters = sum(character.isalpha() for character in sentence)
    return letters >= 0.6 * len(sentence)


def extractive_dek(*, title: str, text: str) -> str:
    """One or two informative sentences from the start of the story, never more than DEK_MAX_CHARS.

    Bylines, captions and share prompts are skipped, a leading dateline is dropped, and a sentence
    that only repeats the headline is passed over.
    """
    title_key = normalise_whitespace(title).lower().rstrip(".")
    chosen: list[str] = []
    for sentence in split_sentences(text[:DEK_SAMPLE_CHARS]):
        if len(chosen) == 2 or (chosen and len(chosen[0]) >= DEK_SHORT_SENTENCE_CHARS):
            break
        sentence = strip_dateline(sentence) if not chosen else sentence
        if not _is_informative(sentence) or sentence.lower().rstrip(".") == title_key:
            continue
        if chosen and len(chosen[0]) + 1 + len(sentence) > DEK_MAX_CHARS:
            break
        chosen.append(sentence)
    dek = " ".join(chosen)
    if len(dek) > DEK_MAX_CHARS:
        dek = dek[: DEK_MAX_CHARS - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return dek


@functools.cache
def _language_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def load_language_model() -> None:
    """Load the language model now (about half a second) rather than on the first story."""
    _language_identifier()


def detect_language(text: str) -> tuple[str, float]:
    """The ISO 639-1 code of `text`'s language and a confidence between 0 and 1.

    py3langid's byte n-gram model is reliable on a paragraph or more; on a headline alone it often
    guesses, so fewer than LANGUAGE_MIN_LETTERS letters scale the confidence down.
    """
    sample = text[:LANGUAGE_SAMPLE_CHARS]
    letters = sum(character.isalpha() for character in sample)
    if letters == 0:
        return "und", 0.0
    code, probability = _language_identifier().classify(sample)
    if letters < LANGUAGE_MIN_LETTERS:
        probability *= letters / LANGUAGE_MIN_LETTERS
    return code, round(float(probability), 3)


def fold_accents(text: str) -> str:
    """`text` without diacritics, so "São Paulo" and "Sao Paulo" match."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(character for character in decomposed if not unicodedata.combining(character))
