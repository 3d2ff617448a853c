"""The labelling interface: what a labeller is given, what it returns and how it fails.

A labeller turns a story's title and text into a `Label`. It never touches the database; the
caller decides what to store.
"""

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_TAGS = 6


class LabellingError(Exception):
    """A labeller could not label a story; the message says why in words an operator can act on."""


class LabellerUnavailable(LabellingError):
    """The labeller cannot run at all: missing configuration, model or package."""


class LabellerRequestFailed(LabellingError):
    """A remote labeller did not answer usefully: timeouts, refused connections, 4xx/5xx after retries."""


class LabellerBudgetExceeded(LabellingError):
    """The per-minute request budget for a remote labeller is spent."""


class LabellerResponseInvalid(LabellingError):
    """A remote labeller answered, but not with a label we can use."""


@dataclass(frozen=True)
class StoryText:
    """What a labeller reads: the story's own words and what its source tells us."""

    title: str
    text: str
    source_region_hint: str | None = None
    existing_tags: Sequence[str] = ()


@dataclass(frozen=True)
class RegionGuess:
    """A continent, and the country within it when the story points to one."""

    continent: str
    country: str | None = None
    country_code: str | None = None

    def __str__(self) -> str:
        return f"{self.continent} / {self.country}" if self.country else self.continent


@dataclass(frozen=True)
class Label:
    """Everything a labeller says about one story, with a confidence between 0 and 1 per field.

    `section` is one of our section slugs (or None when the labeller could not tell), `tags` are
    display names already matched against the site's existing tags, `dek` is one or two sentences.
    `ai_generated` is true only when the labeller wrote text for readers (`body_html`, already
    sanitised). `fallback_from`/`fallback_reason` say which labeller failed before this one answered.
    """

    section: str | None
    tags: tuple[str, ...]
    region: RegionGuess | None
    language: str
    reading_minutes: int
    dek: str
    confidence: dict[str, float]
    labeller: str
    labeller_version: str
    section_scores: dict[str, float] = field(default_factory=dict)
    ai_generated: bool = False
    body_html: str = ""
    fallback_from: str = ""
    fallback_reason: str = ""

    @property
    def labelled_by(self) -> str:
        """The value stored on the story: which labeller and version produced this label."""
        return f"{self.labeller} {self.labeller_version}"


class Labeller(abc.ABC):
    """One way of labelling stories. Subclasses set `name` and `version` and implement `label`."""

    name: str = ""
    version: str = ""

    @abc.abstractmethod
    def label(self, story: StoryText) -> Label:
        """Label one story, or raise a `LabellingError` subclass saying why not."""
