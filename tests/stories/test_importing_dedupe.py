"""Knowing what we already have: canonical URLs, entry keys per source, key strategies for sources whose
GUIDs or links repeat, feed content hashes and near-duplicate stories across sources."""

import csv
import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from datasketch import MinHash

from stories.importing import dedupe
from stories.importing.dedupe import (
    KeyStrategy,
    SimilarityIndex,
    choose_key_strategy,
    content_hash,
    entry_key,
    guids_are_unreliable,
    is_signature,
    links_are_unreliable,
    normalise_url,
    signature_similarity,
    story_signature,
    story_signatures,
)
from stories.models import Source
from tests.conftest import shared_data


@dataclass
class Entry:
    guid: str = ""
    link: str = ""
    title: str = ""
    published: datetime | None = None


# URLs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("HTTPS://News.Example.ORG/World/Story?b=2&a=1", "https://news.example.org/World/Story?a=1&b=2"),
        ("https://news.example.org/story/#comments", "https://news.example.org/story"),
        ("http://news.example.org:80/a", "http://news.example.org/a"),
        ("https://news.example.org:443/a", "https://news.example.org/a"),
        ("https://news.example.org:8443/a/", "https://news.example.org:8443/a"),
        ("https://news.example.org", "https://news.example.org/"),
        ("https://news.example.org/?", "https://news.example.org/"),
        (
            "https://news.example.org/a?utm_source=rss&utm_medium=feed&fbclid=x&gclid=y&mc_cid=1&mc_eid=2&ref=home&id=9",
            "https://news.example.org/a?id=9",
        ),
        ("https://news.example.org/a?UTM_Campaign=x&page=2", "https://news.example.org/a?page=2"),
        ("  https://news.example.org./a  ", "https://news.example.org/a"),
        ("mailto:desk@example.org", "mailto:desk@example.org"),
        ("not a url", "not a url"),
        ("http://[::1]:99999/", "http://[::1]:99999/"),
    ],
)
def test_normalise_url(url, normalised):
    assert normalise_url(url) == normalised


def test_same_article_reached_through_different_links_normalises_to_one_url():
    spellings = [
        "https://www.example.com/news/ferry-strike/?utm_source=twitter",
        "HTTPS://WWW.EXAMPLE.COM:443/news/ferry-strike#top",
        "https://www.example.com/news/ferry-strike?fbclid=IwAR0",
    ]

    assert len({normalise_url(url) for url in spellings}) == 1


# Entry keys --------------------------------------------------------------------------------------


def test_entry_key_prefers_guid_then_link_then_title_and_date():
    published = datetime(2025, 2, 1, 9, tzinfo=UTC)
    with_guid = Entry(guid="urn:1", link="https://x.example/a", title="A", published=published)
    same_guid_other_link = Entry(guid="urn:1", link="https://x.example/b", title="B")
    no_guid = Entry(link="https://x.example/a?utm_source=rss", title="A")
    same_link = Entry(link="https://x.example/a", title="Another title")
    bare = Entry(title="  Ferry   STRIKE ", published=published)
    same_title_and_date = Entry(title="ferry strike", published=published)

    assert entry_key(with_guid, KeyStrategy.GUID) == entry_key(same_guid_other_link, KeyStrategy.GUID)
    assert entry_key(no_guid, KeyStrategy.GUID) == entry_key(same_link, KeyStrategy.GUID)
    assert entry_key(bare, KeyStrategy.GUID) == entry_key(same_title_and_date, KeyStrategy.GUID)
    assert entry_key(with_guid, KeyStrategy.GUID) != entry_key(no_guid, KeyStrategy.GUID)
    assert len(entry_key(with_guid)) == 64


def test_url_strategy_ignores_guids_and_title_date_strategy_ignores_links():
    first = Entry(guid="same", link="https://x.example/1", title="One")
    second = Entry(guid="same", link="https://x.example/2", title="Two")
    third = Entry(guid="other", link="https://x.example/1", title="Three")

    assert entry_key(first, KeyStrategy.URL) != entry_key(second, KeyStrategy.URL)
    assert entry_key(first, KeyStrategy.URL) == entry_key(third, KeyStrategy.URL)
    assert entry_key(first, KeyStrategy.TITLE_DATE) != entry_key(third, KeyStrategy.TITLE_DATE)


def test_keys_are_stable_across_runs_and_accept_the_models_strategy_values():
    entry = Entry(guid="tag:example.org,2025:42")

    assert entry_key(entry, Source.KeyStrategy.GUID) == entry_key(entry, "guid")
    # Stored stories are found by this key: its recipe must not drift.
    assert entry_key(entry) == hashlib.sha256(b"guid:tag:example.org,2025:42").hexdigest()
    assert {strategy.value for strategy in KeyStrategy} == set(Source.KeyStrategy.values)


def test_a_fetch_whose_entries_share_a_guid_makes_guids_unreliable():
    shared = [
        Entry(guid="https://x.example/", link="https://x.example/1", title="One"),
        Entry(guid="https://x.example/", link="https://x.example/2", title="Two"),
    ]
    repeated_entry = [
        Entry(guid="g", link="https://x.example/1?utm_source=a", title="One"),
        Entry(guid="g", link="https://x.example/1", title="One"),
    ]
    distinct = [Entry(guid="g1", link="https://x.example/1"), Entry(guid="g2", link="https://x.example/1")]
    no_links = [Entry(guid="g", title="One"), Entry(guid="g", title="Two")]

    assert guids_are_unreliable(shared)
    assert not guids_are_unreliable(repeated_entry)
    assert not guids_are_unreliable(distinct)
    assert guids_are_unreliable(no_links)
    assert not guids_are_unreliable([])


def test_key_strategy_moves_to_links_then_to_title_and_date_but_never_back():
    guid_clash = [
        Entry(guid="g", link="https://x.example/1", title="One"),
        Entry(guid="g", link="https://x.example/2", title="Two"),
    ]
    everything_clashes = [
        Entry(guid="g", link="https://x.example/", title="One"),
        Entry(guid="g", link="https://x.example/", title="Two"),
    ]
    healthy = [Entry(guid="a", link="https://x.example/1", title="A"), Entry(guid="b", link="https://x.example/2")]

    assert choose_key_strategy(healthy) == KeyStrategy.GUID
    assert choose_key_strategy(guid_clash) == KeyStrategy.URL
    assert choose_key_strategy(everything_clashes) == KeyStrategy.TITLE_DATE
    assert choose_key_strategy(healthy, KeyStrategy.URL) == KeyStrategy.URL
    assert links_are_unreliable(everything_clashes)
    assert not links_are_unreliable(healthy)


def test_content_hash_changes_with_any_byte():
    body = b"<rss><channel><title>x</title></channel></rss>"

    assert content_hash(body) == content_hash(bytes(body))
    assert content_hash(body) != content_hash(body + b" ")
    assert len(content_hash(body)) == 64


# Near-duplicates ---------------------------------------------------------------------------------


def bbc_articles() -> list[str]:
    with shared_data("labels/bbc_news_dev.csv").open(encoding="utf-8") as handle:
        return [f"{row['title']} {row['text']}" for row in csv.DictReader(handle)]


def edited_copy(text: str, rng: random.Random) -> str:
    """What another outlet does with a wire story: a new headline, a sentence or two cut."""
    sentences = text.split(". ")
    kept = [sentence for sentence in sentences if rng.random() > 0.1] or sentences
    return "Latest: " + ". ".join(kept)


def test_signature_is_compact_bytes_and_none_for_text_without_words():
    signature = story_signature("Ferry workers strike over pay in three ports")

    assert isinstance(signature, bytes)
    assert is_signature(signature)
    assert len(signature) == 513
    assert story_signature("") is None
    assert story_signature(" ,.;! ") is None
    assert not is_signature(b"\x00" + signature[1:])


def test_edited_copies_of_real_articles_are_near_duplicates():
    rng = random.Random(7)
    articles = bbc_articles()[:100]

    similarities = sorted(
        signature_similarity(story_signature(text), story_signature(edited_copy(text, rng))) for text in articles
    )

    assert similarities[len(similarities) // 10] >= 0.5  # nine in ten clear the grouping threshold


def test_distinct_real_articles_are_rarely_taken_for_near_duplicates():
    articles = bbc_articles()
    index = SimilarityIndex()
    matches = []
    for number, text in enumerate(articles):  # as imports meet them: matched against what came before
        signature = story_signature(text)
        found = index.similar(signature)
        if found:
            matches.append((found[0], number))
        else:
            index.add(number, signature)

    # The sample holds a few re-published stories; every match must be one of those, with the same headline
    # give or take a word, and they must stay rare.
    titles = [set(text.split(" ", 12)[:8]) for text in articles]
    for first, other in matches:
        overlap = len(titles[first] & titles[other]) / len(titles[first] | titles[other])
        assert overlap >= 0.5, (articles[first][:80], articles[other][:80])
    assert len(matches) <= len(articles) // 100


def test_similarity_index_finds_the_copy_from_another_source_and_nothing_else():
    rng = random.Random(3)
    articles = bbc_articles()[:60]
    index = SimilarityIndex((number, story_signature(text)) for number, text in enumerate(articles))

    copy_of_12 = story_signature(edited_copy(articles[12], rng))
    unrelated = story_signature("A brand new report on deep sea mining licences in the Pacific was published today")

    assert index.similar(copy_of_12)[0] == 12
    assert index.similar(unrelated) == []
    assert index.similar(None) == []
    assert len(index) == 60
    assert not index.add("broken", b"not a signature")
    assert not index.add(12, copy_of_12)


def datasketch_signature(text: str) -> bytes | None:
    """The signature as datasketch's MinHash computes it, shingle by shingle: what stored signatures hold."""
    pieces = dedupe.shingles(text)
    if not pieces:
        return None
    minhash = MinHash(num_perm=dedupe.NUM_PERM, seed=1, scheme="affine32")
    minhash.update_batch(list(pieces))
    return bytes([dedupe.SIGNATURE_FORMAT]) + minhash.hashvalues.astype("<u4").tobytes()


def test_signatures_of_many_texts_at_once_are_the_ones_datasketch_computes():
    rng = random.Random(11)
    alphabet = "abc xyz ÉéßİıŁ日本語 ﬁ_-.,\n\t0123456789\u2019\u00a0"
    texts = [*bbc_articles()[:150], "", "one", "two words", "   ", "three small words"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(500)]

    assert story_signatures(texts) == [datasketch_signature(text) for text in texts]
    assert story_signature(texts[0]) == datasketch_signature(texts[0])


def test_shingles_of_ascii_text_are_the_words_the_unicode_pattern_finds():
    rng = random.Random(5)
    alphabet = [chr(code) for code in range(128)]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        words = [word.encode() for word in dedupe._WORD.findall(text.casefold())]
        expected = (
            {b" ".join(words[start : start + 3]) for start in range(len(words) - 2)}
            if len(words) >= 3
            else ({b" ".join(words)} if words else set())
        )
        assert dedupe.shingles(text) == expected, text


def test_where_excludes_keys_before_they_are_compared():
    rng = random.Random(3)
    articles = bbc_articles()[:20]
    index = SimilarityIndex((number, story_signature(text)) for number, text in enumerate(articles))
    copy_of_4 = story_signature(edited_copy(articles[4], rng))

    assert index.similar(copy_of_4, where=lambda key: key != 4) == []
    score, key = index.most_similar(copy_of_4)
    assert key == 4 and score >= 0.5
    assert SimilarityIndex().most_similar(copy_of_4) is None
