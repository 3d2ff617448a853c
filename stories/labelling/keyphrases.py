"""Tags from a story's words: named entities and key phrases, merged with the site's existing tags.

Extraction is statistical and runs in well under a millisecond per story: runs of capitalised words
and acronyms are entity candidates, runs of content words between stopwords are phrase candidates
(as in RAKE), scored by how often and how early they appear and whether the headline has them.
Normalisation makes "EV", "EVs" and "electric vehicles" one tag, and prefers a tag the site already has.
"""

import functools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from newsreader.sanitize import html_to_text
from stories.labelling.base import MAX_TAGS
from stories.labelling.text import fold_accents, split_sentences, strip_dateline

TAG_MAX_CHARS = 60
KEYPHRASE_SAMPLE_CHARS = 3000
TITLE_BONUS = 1.5
EARLY_CHARS = 400


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


STOPWORDS = _word_set(
    """
    a about above across after again against ago all almost along already also although always am among an and
    another any anyone anything are around as at away back be became because become been before being below
    between both but by can cannot could did do does doing done down during each either else enough even ever
    every few for from further had has have having he her here hers herself him himself his how however i if in
    into is it its itself just last least less like made make many may me might more most much must my myself
    near never next no nor not now of off often on once one only onto or other others our ours ourselves out over
    own per perhaps quite rather really same says said say see seen several shall she should since so some
    something still such than that the their theirs them themselves then there these they this those though
    through thus to together too toward towards under until up upon us very via was we well were what whatever
    when where whether which while who whom whose why will with within without would yet you your yours
    yourself yourselves
    """
)
# Words that are everywhere in news and say nothing about what a story is about.
GENERIC_WORDS = _word_set(
    """
    according added announced asked based believe called come comes coming day days early end expected far first
    found get gets getting give given go goes going good got great group high including told known large later
    latest left long look looking lot major man men month months move new news number official officials old
    part past people percent place point put recent recently report reported reports result right second set
    show small start statement take taken taking thing things think third time times today told tomorrow top two
    three four five six seven eight nine ten use used using want way ways week weeks woman women work working
    year years yesterday monday tuesday wednesday thursday friday saturday sunday january february march april
    june july august september october november december mr mrs ms dr million billion thousand hundred cent
    quot amp lt gt http https www com dozen dozens hundreds thousands millions twenty thirty forty fifty sixty
    seventy eighty ninety longer shorter smaller larger bigger higher lower earlier fewer older newer cheaper
    dearer faster slower better worse
    """
)
# Common verbs that read like nouns to a tagger without grammar ("ferries cross", "attendance grew"):
# they end a phrase instead of joining it.
COMMON_VERBS = _word_set(
    """
    accept accepts add adds agree agrees allow allows appear appears argue argues ask asks become becomes began
    begin begins bought bring brings build builds built buy buys call calls came carry carries cause causes change
    changes claim claims climb climbs close closes come comes continue continues cost costs cross crosses cut cuts
    decide decides deny denies drop drops dries expect expects face faces fall falls fell fills find finds follow
    follows gave give gives grew grow grows had help helps hit hits hold holds keep keeps kept know knows lead leads
    leave leaves led let lets lose loses lost made make makes meet meets met move moves need needs offer offers
    open opens pay pays plan plans put puts raise raises reach reaches rise rises rose run runs saw see sees seek
    seeks sell sells send sends sent set sets show shows shut shuts sold spend spends spent stand stands start starts
    stay stays stop stops struck suggest suggests take takes tell tells think thinks told took tops tried try tries
    turn turns urge urges want wants warn warns went win wins won wrote
    """
)
# Bylines and credits, not subjects.
NEWS_AGENCIES = frozenset({"reuters", "ap", "afp", "upi", "pa", "dpa", "efe", "ansa", "xinhua", "bloomberg"})
_CONNECTORS = frozenset({"of", "and", "the", "de", "for", "&"})

_WORD = re.compile(r"[^\W\d_][\w'\u2019&.-]*\w|[^\W\d_]")
_ACRONYM = re.compile(r"^[A-Z][A-Z0-9&]{1,5}s?$")


@dataclass
class _Candidate:
    surface_counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    body_count: int = 0
    in_title: bool = False
    early: bool = False
    is_entity: bool = False

    @property
    def surface(self) -> str:
        return max(self.surface_counts.items(), key=lambda item: (item[1], len(item[0])))[0]

    def score(self, words: int) -> float:
        """More mentions, a place in the headline, an early first mention and more words score higher."""
        title = (TITLE_BONUS if self.body_count else TITLE_BONUS / 4) if self.in_title else 0.0
        score = self.body_count + title + (0.5 if self.early else 0.0) + 0.3 * (words - 1)
        if self.is_entity:
            return score * 1.3
        # A phrase met once is as likely a turn of phrase ("ferries cross") as a topic.
        return score if self.body_count + self.in_title >= 2 else score * 0.5


def _singular(word: str) -> str:
    if len(word) <= 3 or word.endswith(("ss", "us", "is", "ics", "news", "series", "species")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    if word.endswith("ie"):
        return word[:-2] + "y"
    return word


def _words(name: str) -> list[str]:
    folded = fold_accents(name).lower().replace("\u2019", "'")
    folded = re.sub(r"(?<=\w)[-.](?=\w)", "", folded)
    return re.findall(r"[a-z0-9&]+", folded)


@functools.lru_cache(maxsize=65536)
def tag_key(name: str) -> str:
    """What two tag names must share to be one tag: lower case, no accents, the last word singular."""
    words = _words(name)
    if not words:
        return ""
    if _ACRONYM.match(name.strip()) and name.strip().endswith("s") and len(words) == 1:
        return words[0][:-1]
    words[-1] = _singular(words[-1])
    return " ".join(words)


@functools.lru_cache(maxsize=65536)
def _initials(name: str) -> str:
    words = [word for word in _words(name) if word not in _CONNECTORS]
    return "".join(word[0] for word in words) if len(words) >= 2 else ""


@functools.lru_cache(maxsize=65536)
def _acronym_key(name: str) -> str:
    stripped = name.strip()
    return tag_key(stripped) if _ACRONYM.match(stripped) else ""


class _TagIndex:
    """Tags chosen so far, found again by key, by acronym or by initials."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._by_key: dict[str, int] = {}
        self._by_acronym: dict[str, int] = {}
        self._by_initials: dict[str, int] = {}

    def find(self, name: str) -> int | None:
        key, acronym, initials = tag_key(name), _acronym_key(name), _initials(name)
        for found in (
            self._by_key.get(key),
            self._by_initials.get(acronym) if acronym else None,
            self._by_acronym.get(initials) if initials else None,
        ):
            if found is not None:
                return found
        return None

    def add(self, name: str, position: int | None = None) -> int:
        if position is None:
            self.names.append(name)
            position = len(self.names) - 1
        else:
            self.names[position] = name
        self._by_key.setdefault(tag_key(name), position)
        if acronym := _acronym_key(name):
            self._by_acronym.setdefault(acronym, position)
        if initials := _initials(name):
            self._by_initials.setdefault(initials, position)
        return position


_MARKUP_CHARACTERS = re.compile(r"[<>{}\[\]|\\`]")


def clean_tag(name: str) -> str:
    """A tag name as we store it: one line, no surrounding punctuation, at most TAG_MAX_CHARS."""
    name = html_to_text(name) if "<" in name else name
    cleaned = " ".join(_MARKUP_CHARACTERS.sub(" ", name).split()).strip(" .,;:!?\"'()[]{}<>#*-\u2013\u2014")
    cleaned = "".join(character for character in cleaned if character.isprintable())[:TAG_MAX_CHARS].strip()
    return cleaned[:1].upper() + cleaned[1:] if cleaned.islower() else cleaned


def normalise_tags(candidates: Iterable[str], *, existing_tags: Sequence[str] = (), limit: int = MAX_TAGS) -> list[str]:
    """At most `limit` distinct tags from `candidates` (best first), each spelled as the site already spells it.

    "EV", "EVs" and "electric vehicles" are one tag; when the site has none of them yet, the spelled-out
    form wins over the acronym.
    """
    existing = _TagIndex()
    for name in existing_tags:
        existing.add(name)
    chosen = _TagIndex()
    for candidate in candidates:
        name = clean_tag(candidate)
        if not name or not tag_key(name):
            continue
        position = existing.find(name)
        if position is not None:
            name = existing.names[position]
        already = chosen.find(name)
        if already is None:
            if len(chosen.names) < limit:
                chosen.add(name)
            continue
        current = chosen.names[already]
        if position is None and _acronym_key(current) and not _acronym_key(name) and current not in existing_tags:
            chosen.add(name, already)
    return chosen.names


def _sentence_starts(text: str) -> set[int]:
    starts, offset = {0}, 0
    for sentence in split_sentences(text):
        found = text.find(sentence[:20], offset)
        if found >= 0:
            starts.add(found)
            offset = found + 1
    return starts


def extract_keyphrases(*, title: str, text: str, limit: int = 12) -> list[tuple[str, float]]:
    """Candidate tags with scores, best first: entities (Bank of England, NATO) and key phrases (wind farms)."""
    candidates: dict[str, _Candidate] = {}
    sample = " ".join(strip_dateline(text[:KEYPHRASE_SAMPLE_CHARS]).split())
    lowercase_words, capitalised_words = _word_cases(sample)
    title_words = _WORD.findall(title)
    # A headline in Title Case says nothing about which words are names: the body decides.
    title_case = sum(word[0].isupper() for word in title_words) >= 0.7 * max(1, len(title_words))
    for part, is_title in ((title, True), (sample, False)):
        for phrase, position, is_entity in _phrases(part, lowercase_words, capitalised_words, is_title and title_case):
            key = tag_key(phrase)
            if not key:
                continue
            candidate = candidates.setdefault(key, _Candidate())
            candidate.surface_counts[phrase] += 1
            candidate.is_entity = candidate.is_entity or is_entity
            if is_title:
                candidate.in_title = True
            else:
                candidate.body_count += 1
                candidate.early = candidate.early or position < EARLY_CHARS
    ranked: list[tuple[str, float]] = []
    for key, candidate in candidates.items():
        words = len(key.split())
        # A lone common word must recur to be a topic; a name or a phrase may stand on one mention.
        if words == 1 and not candidate.is_entity and candidate.body_count + candidate.in_title < 2:
            continue
        surface = candidate.surface
        ranked.append((surface if candidate.is_entity else surface[:1].upper() + surface[1:], candidate.score(words)))
    ranked.sort(key=lambda item: -item[1])
    ranked = _merge_equivalent(ranked[: limit * 4])
    ranked.sort(key=lambda item: -item[1])
    return _drop_contained(ranked[: limit * 3])[:limit]


def _merge_equivalent(ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """One candidate per tag: "EVs" and "electric vehicles" add up under the spelled-out name."""
    index = _TagIndex()
    scores: list[float] = []
    for name, score in sorted(ranked, key=lambda item: -item[1]):
        position = index.find(name)
        if position is None:
            index.add(name)
            scores.append(score)
            continue
        scores[position] += score
        if _acronym_key(index.names[position]) and not _acronym_key(name):
            index.add(name, position)
    return list(zip(index.names, scores, strict=True))


def _word_cases(text: str) -> tuple[set[str], set[str]]:
    """Words `text` writes in lower case anywhere, and words it capitalises inside a sentence."""
    starts = _sentence_starts(text)
    lowercase_words: set[str] = set()
    capitalised_words: set[str] = set()
    for match in _WORD.finditer(text):
        word = match.group()
        if word.islower():
            lowercase_words.add(word)
        elif word[0].isupper() and match.start() not in starts:
            capitalised_words.add(word.lower())
    return lowercase_words, capitalised_words


def _drop_contained(ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Keep "Bank of England" and drop "England" when the longer phrase scores at least as well."""
    kept: list[tuple[str, float]] = []
    for name, score in ranked:
        key = f" {tag_key(name)} "
        if any(key in f" {tag_key(other)} " and other_score >= score for other, other_score in kept):
            continue
        kept.append((name, score))
    return kept


def _phrases(
    text: str, lowercase_words: set[str], capitalised_words: set[str], every_word_starts: bool
) -> Iterable[tuple[str, int, bool]]:
    """(phrase, character offset, is_entity) for every candidate in `text`."""
    starts = _sentence_starts(text)
    run: list[tuple[str, int]] = []
    kind: str | None = None

    def flush() -> Iterable[tuple[str, int, bool]]:
        words = [word for word, _offset in run]
        while words and words[-1].lower() in _CONNECTORS:
            words.pop()
        if not words:
            return
        if kind == "entity":
            yield " ".join(words), run[0][1], True
            return
        phrases = [words] if len(words) <= 3 else [words[index : index + 2] for index in range(len(words) - 1)]
        if len(words) > 1:
            # In English the last word of a noun phrase is its head: "battery costs" is about costs.
            phrases.append(words[-1:])
        for phrase in phrases:
            offset = run[words.index(phrase[0])][1]
            yield " ".join(phrase).lower(), offset, False

    for match in _WORD.finditer(text):
        word, offset = match.group(), match.start()
        at_start = every_word_starts or offset in starts
        word_kind = _word_kind(word, at_start, lowercase_words, capitalised_words)
        if word_kind == "connector" and kind == "entity":
            run.append((word, offset))
            continue
        if word_kind != kind or word_kind == "connector" or _gap(text, run, offset):
            yield from flush()
            run, kind = [], None
        if word_kind in ("entity", "phrase"):
            kind = word_kind
            run.append((word, offset))
    yield from flush()


def _word_kind(word: str, at_start: bool, lowercase_words: set[str], capitalised_words: set[str]) -> str | None:
    lower = word.lower()
    if lower in _CONNECTORS:
        return "connector"
    if lower in STOPWORDS or lower in GENERIC_WORDS or lower in NEWS_AGENCIES or len(word) < 2 or word[0].isdigit():
        return None
    if word.islower() and (lower in COMMON_VERBS or (lower.endswith(("ed", "ly")) and len(lower) > 4)):
        return None
    if _ACRONYM.match(word):
        return "entity"
    if word[0].isupper() and (not at_start or (lower in capitalised_words and lower not in lowercase_words)):
        return "entity"
    if len(word) < 3 or not word.replace("-", "").isalpha():
        return None
    return "phrase"


def _gap(text: str, run: list[tuple[str, int]], offset: int) -> bool:
    """True when punctuation separates the next word from the run (a comma ends a phrase)."""
    if not run:
        return False
    last_word, last_offset = run[-1]
    between = text[last_offset + len(last_word) : offset]
    return bool(between.strip(" '\u2019"))


def suggest_tags(
    *,
    title: str,
    text: str,
    existing_tags: Sequence[str] = (),
    exclude: Callable[[str], bool] | None = None,
    relevance: Callable[[Sequence[str]], Sequence[float]] | None = None,
) -> tuple[list[str], float]:
    """Up to MAX_TAGS tags for a story and a confidence: how clearly the best phrases stand out.

    `exclude` drops candidates another field already covers (the region's places). `relevance`, when
    given, scores each candidate's closeness to the whole story (cosine, -1 to 1); it lifts topical
    phrases ("charging points") over incidental ones ("sharp fall").
    """
    candidates = extract_keyphrases(title=title, text=text)
    phrases = [(name, score) for name, score in candidates if exclude is None or not exclude(name)]
    if relevance is not None and phrases:
        closeness = relevance([name for name, _score in phrases])
        phrases = [
            (name, score * (0.5 + max(0.0, float(near))))
            for (name, score), near in zip(phrases, closeness, strict=True)
        ]
        phrases.sort(key=lambda item: -item[1])
    tags = normalise_tags((name for name, _score in phrases), existing_tags=existing_tags)
    if not tags:
        return [], 0.0
    top_scores = [score for _name, score in phrases[: len(tags)]]
    confidence = min(0.9, sum(top_scores) / (len(top_scores) * 6.0))
    return tags, round(confidence, 3)
