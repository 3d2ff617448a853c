"""The default labeller: runs offline on the CPU from static word embeddings shipped inside a PyPI package.

Stories and our section profiles are embedded with wordllama's token embeddings (mean of the token
vectors; the weights and tokenizer are files inside the installed wheel, nothing is downloaded).
A section's probability comes from one or more section models combined per section: the zero-label
prior built from our descriptions, examples and keywords, joined once moderators have corrected enough
stories by the model fitted on their corrections (`CorrectionsSectionModel`, fitted in `learning`) with
a weight per section (see `combine_section_probabilities`).
"""

import copy
import functools
import hashlib
import importlib.util
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np

from stories.labelling import keyphrases, regions, text
from stories.labelling.base import Label, Labeller, LabellerUnavailable, LabellingError, StoryText
from stories.labelling.sections import SECTION_PROFILES, SECTION_SLUGS, SectionProfile
from stories.models import reading_minutes

# The lead carries the topic; reading further costs time and adds little.
SECTION_SAMPLE_CHARS = 1500
# Share of the headline in the story's vector; the rest is the opening of the text.
TITLE_WEIGHT = 0.3
# Softmax temperature over cosine similarities: turns small similarity gaps into probabilities.
TEMPERATURE = 0.1
WORDLLAMA_WEIGHTS = "l2_supercat_256.safetensors"
WORDLLAMA_TOKENIZER = "l2_supercat_tokenizer_config.json"
# The fitted model reads the prior's centred story vectors at this length: unit vectors would need
# very large coefficients, which the regularisation forbids.
CORRECTIONS_FEATURE_SCALE = 4.0


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-9)


class StaticEncoder:
    """wordllama's static token embeddings: a text's vector is the mean of its tokens' vectors."""

    def __init__(self, *, package_dir: Path | None = None) -> None:
        try:
            from safetensors import safe_open
            from tokenizers import Tokenizer
        except ImportError as error:
            raise LabellerUnavailable(f"The embedded labeller needs tokenizers and safetensors: {error}") from error
        if package_dir is None:
            # Only wordllama's files are needed: importing the package would configure logging and pull in
            # its download helpers.
            spec = importlib.util.find_spec("wordllama")
            if spec is None or not spec.submodule_search_locations:
                raise LabellerUnavailable("The embedded labeller needs the wordllama package (see requirements.txt).")
            package_dir = Path(spec.submodule_search_locations[0])
        weights_path = package_dir / "weights" / WORDLLAMA_WEIGHTS
        tokenizer_path = package_dir / "tokenizers" / WORDLLAMA_TOKENIZER
        if not weights_path.exists() or not tokenizer_path.exists():
            raise LabellerUnavailable(
                f"wordllama's model files are missing from {package_dir}; reinstall wordllama from requirements.txt."
            )
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        with safe_open(str(weights_path), framework="np", device="cpu") as weights:
            # Kept in the file's half precision (16 MB); each story's few hundred rows are widened when read.
            self.embedding = np.ascontiguousarray(weights.get_tensor("embedding.weight"))
        self.dimensions = self.embedding.shape[1]
        self.name = f"wordllama-{metadata.version('wordllama')}/{weights_path.stem}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One unnormalised vector per text (zeros for a text without tokens)."""
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        # One text at a time on the calling thread: encode_batch would start a thread pool per worker process.
        for row, text_ in enumerate(texts):
            ids = self.tokenizer.encode(text_, add_special_tokens=False).ids
            if ids:
                vectors[row] = self.embedding[ids].mean(axis=0, dtype=np.float32)
        return vectors


class SectionModel(Protocol):
    """Anything that gives every story vector a probability per section (columns in SECTION_SLUGS order)."""

    name: str

    def probabilities(self, vectors: np.ndarray) -> np.ndarray: ...

    def weights(self) -> np.ndarray:
        """How much this model speaks for each section, one non-negative number per section."""
        ...


class PrototypeSectionModel:
    """The zero-label prior: nearness to each section's centroid of our own descriptions, examples and keywords.

    Every prototype is embedded on its own and the section centroid is their mean. Vectors are
    centred on the mean of all prototypes first, which removes what all news has in common and
    leaves what sets the sections apart.
    """

    name = "prototypes"

    def __init__(self, *, encoder: StaticEncoder, profiles: Sequence[SectionProfile] = SECTION_PROFILES) -> None:
        per_section = [
            _normalise(encoder.encode([f"{p.name}. {p.description}", *p.examples, *p.keywords])) for p in profiles
        ]
        self.centre = np.vstack(per_section).mean(axis=0)
        centroids = np.vstack([prototypes.mean(axis=0) for prototypes in per_section])
        self.centroids = _normalise(_normalise(centroids) - self.centre)

    def similarities(self, vectors: np.ndarray) -> np.ndarray:
        return _normalise(_normalise(vectors) - self.centre) @ self.centroids.T

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        return _softmax(self.similarities(vectors) / TEMPERATURE)

    def weights(self) -> np.ndarray:
        return np.ones(len(self.centroids), dtype=np.float32)


def _softmax(scores: np.ndarray) -> np.ndarray:
    exponentials = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def combine_section_probabilities(models: Sequence[SectionModel], vectors: np.ndarray) -> np.ndarray:
    """Per section, the weighted mean of the models' probabilities, renormalised over sections.

    With the prior alone (weight 1 everywhere) this is exactly the prior; a fitted model whose
    weight for a section grows with that section's corrections takes over that section gradually.
    """
    numerator = np.zeros((len(vectors), len(SECTION_SLUGS)), dtype=np.float64)
    denominator = np.zeros(len(SECTION_SLUGS), dtype=np.float64)
    for model in models:
        weights = np.asarray(model.weights(), dtype=np.float64)
        speaks = weights > 0
        if not speaks.any():
            continue
        # A model's numbers for sections it does not speak for are never read.
        numerator[:, speaks] += model.probabilities(vectors)[:, speaks] * weights[speaks]
        denominator += np.where(speaks, weights, 0.0)
    combined = numerator / np.maximum(denominator, 1e-9)
    return combined / combined.sum(axis=-1, keepdims=True)


class IncompatibleSectionModel(LabellingError):
    """Stored parameters were fitted with another encoder or other sections than this labeller's."""


def corrections_features(prior: PrototypeSectionModel, vectors: np.ndarray) -> np.ndarray:
    """What the fitted model reads: story vectors centred like the prior's, at a fixed length."""
    return _normalise(_normalise(vectors) - prior.centre) * CORRECTIONS_FEATURE_SCALE


class CorrectionsSectionModel:
    """The section model learnt from moderators' corrections (fitted by `learning.fit_section_model`).

    A multinomial logistic regression on the story vectors whose logits start from the prior's
    log-probabilities: it learns where our newsroom draws a section's line differently from the prior,
    and with few corrections it stays close to the prior. It speaks only for sections with enough
    corrections (`speaks`): only they have coefficients, so it never favours another section, though it
    may move probability from the others to them (see `learning.section_weights`).
    """

    def __init__(
        self,
        *,
        prior: PrototypeSectionModel,
        coefficients: np.ndarray,
        intercepts: np.ndarray,
        section_weights: np.ndarray,
        speaks: np.ndarray,
        name: str = "corrections",
    ) -> None:
        self.prior = prior
        self.coefficients = np.asarray(coefficients, dtype=np.float32)
        self.intercepts = np.asarray(intercepts, dtype=np.float32)
        self.section_weights = np.asarray(section_weights, dtype=np.float32)
        self.speaks = np.asarray(speaks, dtype=bool)
        self.name = name

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        prior_log = np.log(np.maximum(self.prior.probabilities(vectors), 1e-9))
        return corrections_features(self.prior, vectors) @ self.coefficients + self.intercepts + prior_log

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        return _softmax(self.logits(vectors))

    def weights(self) -> np.ndarray:
        return self.section_weights

    def to_bytes(self, *, basis: str) -> bytes:
        """The parameters as stored in the database, with what they may be used with."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            coefficients=self.coefficients,
            intercepts=self.intercepts,
            section_weights=self.section_weights,
            speaks=self.speaks,
            sections=np.array(SECTION_SLUGS),
            basis=np.array(basis),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(
        cls, data: bytes, *, prior: PrototypeSectionModel, basis: str, name: str
    ) -> "CorrectionsSectionModel":
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as stored:
            if str(stored["basis"]) != basis or tuple(str(slug) for slug in stored["sections"]) != SECTION_SLUGS:
                raise IncompatibleSectionModel(
                    f"{name} was fitted with {stored['basis']} and cannot be used with {basis}; refit the labeller."
                )
            return cls(
                prior=prior,
                coefficients=stored["coefficients"],
                intercepts=stored["intercepts"],
                section_weights=stored["section_weights"],
                speaks=stored["speaks"],
                name=name,
            )


def _profiles_digest(profiles: Sequence[SectionProfile]) -> str:
    digest = hashlib.sha256()
    for profile in profiles:
        digest.update(repr(profile).encode())
    return digest.hexdigest()[:8]


@dataclass(frozen=True)
class _SectionState:
    models: tuple[SectionModel, ...]
    version: str


class EmbeddedLabeller(Labeller):
    """Section, tags, region, language, reading time and dek, all computed on this machine."""

    name = "embedded"
    base_version = "1"

    def __init__(self, *, encoder: StaticEncoder | None = None, section_models: Sequence[SectionModel] = ()) -> None:
        self.encoder = encoder or StaticEncoder()
        self.prior = PrototypeSectionModel(encoder=self.encoder)
        self._state = self._section_state(section_models)
        # Everything a label needs is loaded with the labeller, so the first story is as fast as the rest.
        regions.gazetteer()
        text.load_language_model()

    @property
    def basis(self) -> str:
        """What a fitted section model depends on: this encoder and these section profiles."""
        return f"{self.base_version}/{self.encoder.name}/{_profiles_digest(SECTION_PROFILES)}"

    @property
    def section_models(self) -> tuple[SectionModel, ...]:
        return self._state.models

    @property
    def version(self) -> str:
        return self._state.version

    def _section_state(self, section_models: Sequence[SectionModel]) -> "_SectionState":
        models = (self.prior, *section_models)
        names = "+".join(model.name for model in models)
        version = f"{self.base_version}/{self.encoder.name}/{names}-{_profiles_digest(SECTION_PROFILES)}"
        return _SectionState(models=models, version=version)

    def use_section_models(self, section_models: Sequence[SectionModel]) -> None:
        """Label with the prior and these models from now on. The swap is one assignment, so a label
        being computed on another thread keeps the models and version it started with."""
        self._state = self._section_state(section_models)

    def with_section_models(self, section_models: Sequence[SectionModel]) -> "EmbeddedLabeller":
        """A labeller sharing this one's encoder and prior, with these models beside the prior."""
        labeller = copy.copy(self)
        labeller._state = self._section_state(section_models)
        return labeller

    def section_probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Per story vector, the probability of each section in SECTION_SLUGS order."""
        return combine_section_probabilities(self._state.models, vectors)

    def story_vectors(self, stories: Sequence[StoryText]) -> np.ndarray:
        """The vectors section models read: the headline's and the opening text's, weighted and combined."""
        titles = _normalise(self.encoder.encode([story.title for story in stories]))
        bodies = _normalise(self.encoder.encode([story.text[:SECTION_SAMPLE_CHARS] for story in stories]))
        return _normalise(TITLE_WEIGHT * titles + (1 - TITLE_WEIGHT) * bodies)

    def label(self, story: StoryText) -> Label:
        state = self._state
        vector = self.story_vectors([story])
        probabilities = combine_section_probabilities(state.models, vector)[0]
        best = int(probabilities.argmax())
        region, region_confidence = regions.guess_region(
            title=story.title, text=story.text, source_hint=story.source_region_hint
        )
        tags, tags_confidence = keyphrases.suggest_tags(
            title=story.title,
            text=story.text,
            existing_tags=story.existing_tags,
            exclude=regions.gazetteer().is_place,
            relevance=self._relevance_to(vector[0]),
        )
        language, language_confidence = text.detect_language(f"{story.title}. {story.text}")
        dek = text.extractive_dek(title=story.title, text=story.text)
        return Label(
            section=SECTION_SLUGS[best],
            tags=tuple(tags),
            region=region,
            language=language,
            reading_minutes=reading_minutes(story.text),
            dek=dek,
            confidence={
                "section": round(float(probabilities[best]), 3),
                "tags": tags_confidence,
                "region": region_confidence,
                "language": language_confidence,
                "dek": 0.9 if dek else 0.0,
            },
            labeller=self.name,
            labeller_version=state.version,
            section_scores={slug: round(float(p), 4) for slug, p in zip(SECTION_SLUGS, probabilities, strict=True)},
        )

    def _relevance_to(self, story_vector: np.ndarray) -> Callable[[Sequence[str]], np.ndarray]:
        """How close each candidate phrase is to the story, on the prior's centred space."""
        centred_story = _normalise(story_vector - self.prior.centre)

        def relevance(phrases: Sequence[str]) -> np.ndarray:
            vectors = _normalise(_normalise(self.encoder.encode(phrases)) - self.prior.centre)
            return vectors @ centred_story

        return relevance


@functools.cache
def embedded_labeller() -> EmbeddedLabeller:
    """The process's embedded labeller; the model loads once, on first use."""
    return EmbeddedLabeller()
