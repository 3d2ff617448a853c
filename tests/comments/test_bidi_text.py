"""Bidi controls and zero-width characters in comments: one reader's text cannot reorder the page around it,
nor hide a word from the moderation rules."""

import pytest

from comments.markup import fingerprint, normalise, render_comment

RIGHT_TO_LEFT_OVERRIDE = "\u202e"
ISOLATES = "\u2066\u2067\u2068\u2069"
EMBEDDINGS = "\u202a\u202b\u202c\u202d"


@pytest.mark.parametrize(
    ("hostile", "shown"),
    [
        (f"{RIGHT_TO_LEFT_OVERRIDE}gnp.exe is a harmless file", "<p>gnp.exe is a harmless file</p>"),
        (f"An unclosed isolate {ISOLATES[1]}swallows the page", "<p>An unclosed isolate swallows the page</p>"),
        (f"{EMBEDDINGS}Nested embeddings{ISOLATES}", "<p>Nested embeddings</p>"),
        (f"*emphasis{RIGHT_TO_LEFT_OVERRIDE}* and more", "<p><em>emphasis</em> and more</p>"),
    ],
)
def test_override_embedding_and_isolate_controls_never_reach_the_stored_html(hostile, shown):
    html = render_comment(hostile)

    assert not set(html) & set(RIGHT_TO_LEFT_OVERRIDE + ISOLATES + EMBEDDINGS)
    assert html.strip() == shown


def test_right_to_left_text_and_joiners_are_kept():
    arabic = "\u0645\u0631\u062d\u0628\u0627"
    persian_with_zero_width_non_joiner = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    family_emoji = "\U0001f468\u200d\U0001f469\u200d\U0001f467"

    html = render_comment(f"{arabic} {persian_with_zero_width_non_joiner} {family_emoji}")

    assert arabic in html
    assert persian_with_zero_width_non_joiner in html
    assert family_emoji in html


def test_zero_width_characters_cannot_split_a_word_the_rules_look_for():
    assert normalise("sp\u200bam w\u2060ord\ufeff") == "spam word"
    assert normalise(f"{RIGHT_TO_LEFT_OVERRIDE}spam") == "spam"


def test_the_same_text_with_invisible_characters_added_counts_as_posted_twice():
    assert fingerprint("Buy cheap ferry tickets") == fingerprint("Buy\u200b cheap ferry\u200d tickets\u2069")
