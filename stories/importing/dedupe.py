"""Recognising what we already have: stable entry keys per source, feed content hashes, and
near-duplicate stories across sources (MinHash over word shingles).
"""

import functools
import hashlib
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Hashable, Iterable
from enum import StrEnum
from typing import Protocol

import numpy as np
from datasketch import MinHash, MinHashLSH

NEAR_DUPLICATE_THRESHOLD = 0.5
SHINGLE_WORDS = 3
NUM_PERM = 128
SIGNATURE_FORMAT = 1  # bump when shingling, hashing or NUM_PERM change: older signatures stop matching
_MINHASH_SCHEME = "affine32"
_SIGNATURE_BYTES = 1 + NUM_PERM * 4

TRACKING_PARAMETERS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "mkt_tok",
        "ref",
        "ref_src",
        "ref_url",
        "referrer",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "cmpid",
        "ocid",
        "smid",
        "sr_share",
        "at_medium",
        "at_campaign",
        "share",
    }
)
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_")
DEFAULT_PORTS = {"http": 80, "https": 443}


class KeyStrategy(StrEnum):
    """How entries of one source are told apart; same values as ``Source.KeyStrategy``. Each step down
    the list is coarser; a source only ever moves down it."""

    GUID = "guid"
    URL = "url"
    TITLE_DATE = "title_date"


class KeyedEntry(Protocol):
    """What keying needs of an entry (``parse.ParsedEntry`` has it)."""

    guid: str
    link: str
    title: str
    published: object


# Feed content ----------------------------------------------------------------------------------


def content_hash(content: bytes) -> str:
    """A 64-character digest of a fetched feed body: equal digests mean nothing to parse."""
    return hashlib.sha256(content).hexdigest()


# URLs and entry keys ---------------------------------------------------------------------------


def normalise_url(url: str) -> str:
    """`url` in one canonical spelling, so the same article reached by different links compares equal:
    lower-case scheme and host, no default port, no fragment, no tracking parameters, the remaining
    query parameters sorted, no trailing slash except on the root. Non-web URLs come back stripped."""
    url = (url or "").strip()
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return url
    host = parts.hostname.rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    if parts.username or parts.password:
        credentials = parts.username or ""
        if parts.password:
            credentials += f":{parts.password}"
        host = f"{credentials}@{host}"
    path = parts.path or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    query = sorted(
        (name, value)
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if not _is_tracking_parameter(name)
    )
    return urllib.parse.urlunsplit((scheme, host, path, urllib.parse.urlencode(query, doseq=True), ""))


def _is_tracking_parameter(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMETERS or lowered.startswith(TRACKING_PREFIXES)


def entry_key(entry: KeyedEntry, strategy: str = KeyStrategy.GUID) -> str:
    """A stable 64-character key for `entry` within its source.

    GUID: the entry's GUID, else its normalised link, else its title and date. URL: the normalised
    link, else title and date. TITLE_DATE: title and date only. The kind of key is part of what is
    hashed, so a GUID never equals a link by accident."""
    strategy = KeyStrategy(strategy)
    guid = (entry.guid or "").strip()
    if strategy == KeyStrategy.GUID and guid:
        material = f"guid:{guid}"
    elif strategy in (KeyStrategy.GUID, KeyStrategy.URL) and (link := normalise_url(entry.link) if entry.link else ""):
        material = f"url:{link}"
    else:
        published = entry.published.isoformat() if hasattr(entry.published, "isoformat") else ""
        material = f"title_date:{' '.join(entry.title.casefold().split())}|{published}"
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def guids_are_unreliable(entries: Iterable[KeyedEntry]) -> bool:
    """True when one fetch shows the source's GUIDs cannot tell its entries apart: two entries share
    a GUID but differ in link or title."""
    return _key_collides(entries, key=lambda entry: (entry.guid or "").strip())


def links_are_unreliable(entries: Iterable[KeyedEntry]) -> bool:
    """True when two entries of one fetch link to the same page under different titles (a feed whose
    every item links to its home page)."""
    return _key_collides(entries, key=lambda entry: normalise_url(entry.link) if entry.link else "", by_title=True)


def choose_key_strategy(entries: Iterable[KeyedEntry], current: str = KeyStrategy.GUID) -> KeyStrategy:
    """The key strategy to use from now on: `current`, or a coarser one when this fetch shows that
    GUIDs (then links) repeat. Never finer than `current`: switching back would re-key stored stories."""
    entries = list(entries)
    strategy = KeyStrategy(current)
    if strategy == KeyStrategy.GUID and guids_are_unreliable(entries):
        strategy = KeyStrategy.URL
    if strategy == KeyStrategy.URL and links_are_unreliable(entries):
        strategy = KeyStrategy.TITLE_DATE
    return strategy


def _key_collides(entries: Iterable[KeyedEntry], *, key, by_title: bool = False) -> bool:
    def identity(entry: KeyedEntry) -> str:
        if not by_title and entry.link:
            return f"{normalise_url(entry.link)} {_title_words(entry.title)}"
        return _title_words(entry.title)

    # The first entry of each key; identities are worked out only for entries that share one.
    first_with: dict[str, KeyedEntry] = {}
    for entry in entries:
        value = key(entry)
        if not value:
            continue
        first = first_with.setdefault(value, entry)
        if first is not entry and identity(first) != identity(entry):
            return True
    return False


def _title_words(title: str) -> str:
    return " ".join((title or "").casefold().split())


# Near-duplicates -------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
# For ASCII text, \w is letters, digits and "_": every other byte becomes a space, and splitting gives the words.
_ASCII_NON_WORD_TO_SPACE = bytes(byte if chr(byte).isalnum() or byte == ord("_") else ord(" ") for byte in range(256))
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=1, scheme=_MINHASH_SCHEME).permutations
# MurmurHash3's 32-bit finalizer, which the affine32 scheme applies to each shingle's hash before permuting it.
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
# Shingle hashes permuted at once: a few megabytes of uint32 per batch.
_SIGNATURE_BATCH_SHINGLES = 20_000


def shingles(text: str, *, size: int = SHINGLE_WORDS) -> set[bytes]:
    """Overlapping runs of `size` words of `text`, case and accents folded; short texts give one."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    if folded.isascii():
        words = folded.encode().translate(_ASCII_NON_WORD_TO_SPACE).split()
    else:
        words = [word.encode() for word in _WORD.findall(folded)]
    if len(words) < size:
        return {b" ".join(words)} if words else set()
    return set(map(b" ".join, zip(*(words[start:] for start in range(size)), strict=False)))


def story_signature(text: str) -> bytes | None:
    """A 513-byte MinHash signature of `text` (title and body) to store with the story, or None
    when the text has no words."""
    return story_signatures([text])[0]


def story_signatures(texts: Iterable[str]) -> list[bytes | None]:
    """`story_signature` of each text: the same bytes as datasketch's MinHash gives, with the permutations of
    many texts' shingles applied in a few numpy operations instead of a few per text."""
    pieces = [shingles(text) for text in texts]
    signatures: list[bytes | None] = [None] * len(pieces)
    batch: list[int] = []
    batch_size = 0
    for position, text_pieces in enumerate(pieces):
        if text_pieces:
            batch.append(position)
            batch_size += len(text_pieces)
        if batch and (batch_size >= _SIGNATURE_BATCH_SHINGLES or position == len(pieces) - 1):
            for index, hashvalues in zip(batch, _min_hashes([pieces[index] for index in batch]), strict=True):
                signatures[index] = bytes([SIGNATURE_FORMAT]) + hashvalues.astype("<u4").tobytes()
            batch, batch_size = [], 0
    return signatures


def _min_hashes(shingle_sets: list[set[bytes]]) -> np.ndarray:
    """One row of NUM_PERM minimum permuted hashes per non-empty set, as MinHash.update_batch computes them:
    sha1_hash32 of each shingle, the fmix32 pre-mix, then a * h + b modulo 2**32 per permutation."""
    digests = b"".join(
        [
            hashlib.sha1(shingle, usedforsecurity=False).digest()[:4]
            for text_shingles in shingle_sets
            for shingle in text_shingles
        ]
    )
    hashes = np.frombuffer(digests, dtype="<u4").astype(np.uint32)
    shift1, multiply1, shift2, multiply2, shift3 = _FMIX32
    hashes = hashes ^ (hashes >> shift1)
    hashes = hashes * multiply1
    hashes = hashes ^ (hashes >> shift2)
    hashes = hashes * multiply2
    hashes = hashes ^ (hashes >> shift3)
    multipliers, increments = _PERMUTATIONS
    # One row per permutation, so that each text's minimum is taken over contiguous memory (ten times faster).
    permuted = multipliers[:, np.newaxis] * hashes + increments[:, np.newaxis]
    starts = np.cumsum([0] + [len(text_shingles) for text_shingles in shingle_sets[:-1]])
    return np.minimum.reduceat(permuted, starts, axis=1).T


def signature_similarity(first: bytes, second: bytes) -> float:
    """Estimated Jaccard similarity (0 to 1) of the shingles behind two signatures."""
    return float(np.count_nonzero(_hashvalues(first) == _hashvalues(second))) / NUM_PERM


def is_signature(value: bytes | None) -> bool:
    """True when `value` is a signature this version can compare (older formats cannot)."""
    return bool(value) and len(value) == _SIGNATURE_BYTES and value[0] == SIGNATURE_FORMAT


def _hashvalues(signature: bytes) -> np.ndarray:
    if not is_signature(signature):
        raise ValueError("Not a story signature of the current format")
    return np.frombuffer(signature, dtype="<u4", offset=1)


def _new_minhash(hashvalues: np.ndarray | None = None) -> MinHash:
    return MinHash(num_perm=NUM_PERM, seed=1, scheme=_MINHASH_SCHEME, permutations=_PERMUTATIONS, hashvalues=hashvalues)


class SimilarityIndex:
    """Stored signatures, searchable for near-duplicates: LSH finds candidates, the signature
    comparison confirms them. Signatures of another format are ignored."""

    def __init__(
        self, signatures: Iterable[tuple[Hashable, bytes]] = (), *, threshold: float = NEAR_DUPLICATE_THRESHOLD
    ) -> None:
        self.threshold = threshold
        self._lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM, params=_lsh_bands_and_rows(threshold))
        self._signatures: dict[Hashable, bytes] = {}
        for key, signature in signatures:
            self.add(key, signature)

    def __len__(self) -> int:
        return len(self._signatures)

    def add(self, key: Hashable, signature: bytes | None) -> bool:
        """Index `signature` under `key`; False when it is not a usable signature or the key is taken."""
        if not is_signature(signature) or key in self._signatures:
            return False
        self._lsh.insert(key, _new_minhash(_hashvalues(signature).copy()))
        self._signatures[key] = signature
        return True

    def similar(self, signature: bytes | None, *, where: Callable[[Hashable], bool] | None = None) -> list[Hashable]:
        """Keys whose signatures are at least `threshold` similar to `signature`, most similar first (then by key:
        keys must be comparable); with `where`, only the keys it accepts (asked before any comparison, so
        excluding many keys is cheap)."""
        return [key for _, key in self._scored(signature, where)]

    def most_similar(
        self, signature: bytes | None, *, where: Callable[[Hashable], bool] | None = None
    ) -> tuple[float, Hashable] | None:
        """The similarity and key of the first of `similar(signature, where=where)`, or None."""
        scored = self._scored(signature, where)
        return scored[0] if scored else None

    def _scored(
        self, signature: bytes | None, where: Callable[[Hashable], bool] | None
    ) -> list[tuple[float, Hashable]]:
        if not self._signatures or not is_signature(signature):
            return []
        candidates = self._lsh.query(_new_minhash(_hashvalues(signature).copy()))
        if where is not None:
            candidates = [key for key in candidates if where(key)]
        scored = [(signature_similarity(signature, self._signatures[key]), key) for key in candidates]
        return sorted((pair for pair in scored if pair[0] >= self.threshold), key=lambda pair: (-pair[0], pair[1]))


@functools.cache
def _lsh_bands_and_rows(threshold: float) -> tuple[int, int]:
    """The LSH bands and rows datasketch chooses for `threshold`, worked out once: it integrates numerically to
    choose them, which took longer than indexing a feed's signatures."""
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    return lsh.b, lsh.r
