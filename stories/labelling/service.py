"""Labelling stories: which labeller answers (the configured one, then the fallbacks, ending with
`embedded`), and storing its label on the story without overriding a moderator's correction.
Recording a section correction counts towards the next refit of what the labeller learns (`learning`).
"""

import dataclasses
import logging
from collections.abc import Callable, Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from stories.labelling import learning
from stories.labelling.base import Label, Labeller, LabellerUnavailable, LabellingError, RegionGuess, StoryText
from stories.labelling.embedded import embedded_labeller
from stories.labelling.openai import OpenAILabeller
from stories.models import LabelCorrection, Region, Section, Source, Story, Tag

logger = logging.getLogger(__name__)

DEFAULT_LABELLER = "embedded"
# Characters of a story's text a labeller is given: far more than any of them reads closely (the OpenAI
# prompt takes 12,000), and a bound on the time and memory a huge body could cost every labeller.
LABELLING_TEXT_MAX_CHARS = 20_000

# Each factory returns a ready labeller; the embedded one is built once per process (it loads a model),
# the openai one is cheap and reads its settings afresh.
LABELLERS: dict[str, Callable[[], Labeller]] = {
    "embedded": embedded_labeller,
    "openai": OpenAILabeller.from_settings,
}


def get_labeller(name: str) -> Labeller:
    factory = LABELLERS.get(name)
    if factory is None:
        raise LabellerUnavailable(f"There is no labeller called {name!r}; LABELLER may be one of {sorted(LABELLERS)}.")
    return factory()


def labeller_chain() -> list[str]:
    """The labellers to try, in order: LABELLER, then LABELLER_FALLBACKS, and `embedded` last in any case."""
    chain = [settings.LABELLER, *settings.LABELLER_FALLBACKS, DEFAULT_LABELLER]
    return list(dict.fromkeys(name for name in chain if name))


def label_story_text(
    *, title: str, text: str, source_region_hint: str | None = None, existing_tags: Sequence[str] = ()
) -> Label:
    """Label one story with the first labeller in the chain that succeeds.

    A failure is logged and recorded on the label that finally answers (`fallback_from` names the
    first labeller that failed, `fallback_reason` every failure in order). Raises LabellingError only
    when every labeller in the chain failed. Labellers get the first LABELLING_TEXT_MAX_CHARS of `text`.
    """
    story = StoryText(
        title=title,
        text=text[:LABELLING_TEXT_MAX_CHARS],
        source_region_hint=source_region_hint,
        existing_tags=tuple(existing_tags),
    )
    failures: list[tuple[str, str]] = []
    for name in labeller_chain():
        try:
            label = get_labeller(name).label(story)
        except LabellingError as error:
            logger.warning("Labeller %s failed on %r: %s", name, title[:80], error)
            failures.append((name, str(error)))
            continue
        if failures:
            reason = "; ".join(f"{failed}: {message}" for failed, message in failures)
            label = dataclasses.replace(label, fallback_from=failures[0][0], fallback_reason=reason)
        return label
    raise LabellingError("No labeller could label the story: " + "; ".join(f"{n}: {m}" for n, m in failures))


def label_story(*, story_id: int) -> Story | None:
    """Label one story and store the label; safe to run again (the same text gives the same label).

    Fields a moderator corrected keep the correction. A story whose source publishes after labelling
    is published now. The embedded labeller first catches up with the promoted version of what it learnt
    from corrections (see `learning.CurrentVersion`). Returns None when the story no longer exists.
    """
    story = Story.objects.select_related("source__region_hint__parent").filter(pk=story_id).first()
    if story is None:
        return None
    learning.use_current_version()
    hint = story.source.region_hint
    label = label_story_text(
        title=story.title,
        text=story.body_text or story.dek,
        source_region_hint=str(hint) if hint else None,
        existing_tags=list(Tag.objects.order_by("-pk").values_list("name", flat=True)[:5000]),
    )
    corrected = set(LabelCorrection.objects.active().filter(story=story).values_list("field", flat=True))
    with transaction.atomic():
        if label.section and LabelCorrection.Field.SECTION not in corrected:
            story.section = Section.objects.filter(slug=label.section).first() or story.section
        if label.region and LabelCorrection.Field.REGION not in corrected:
            story.region = region_for(label.region)
        if LabelCorrection.Field.TAGS not in corrected:
            story.tags.set(tags_named(label.tags))
        if label.ai_generated and label.body_html:
            story.body_html = label.body_html
            story.ai_generated = True
        if not story.dek:
            story.dek = label.dek
        story.language = label.language or story.language
        story.ai_labelled = True
        story.labeller = label.labelled_by
        story.labelled_at = timezone.now()
        story.label_confidence = label.confidence
        story.label_fallback = label.fallback_reason
        if story.status == Story.Status.DRAFT and story.source.publish_mode == Source.PublishMode.AFTER_LABELLING:
            story.status = Story.Status.PUBLISHED
        story.save()
    return story


def region_for(guess: RegionGuess) -> Region:
    """The site's region for a guess, creating the continent and country the first time."""
    continent, _ = Region.objects.get_or_create(
        slug=slugify(guess.continent), defaults={"name": guess.continent, "parent": None}
    )
    if not guess.country:
        return continent
    country, _ = Region.objects.get_or_create(
        slug=slugify(guess.country), defaults={"name": guess.country, "parent": continent}
    )
    return country


def tags_named(names: Sequence[str]) -> list[Tag]:
    tags = []
    for name in names:
        slug = slugify(name)[:100]
        if slug:
            tags.append(Tag.objects.get_or_create(slug=slug, defaults={"name": name[:100]})[0])
    return tags


def label_snapshot(story: Story) -> dict:
    """The correctable parts of a story's label, as a correction stores them."""
    return {
        LabelCorrection.Field.SECTION: story.section.slug if story.section_id else None,
        LabelCorrection.Field.REGION: story.region.slug if story.region_id else None,
        LabelCorrection.Field.TAGS: sorted(story.tags.values_list("name", flat=True)),
    }


def record_corrections(*, story: Story, previous: dict, moderator) -> list[LabelCorrection]:
    """Store a correction for each labelled field a moderator changed; it wins over later relabels.
    Once the transaction commits, enough new section corrections queue a refit of the labeller."""
    current = label_snapshot(story)
    corrections = []
    for field_name, value in current.items():
        if value == previous.get(field_name):
            continue
        LabelCorrection.objects.active().filter(story=story, field=field_name).update(withdrawn_at=timezone.now())
        corrections.append(
            LabelCorrection.objects.create(
                story=story,
                field=field_name,
                value=value,
                previous_value=previous.get(field_name),
                corrected_by=moderator,
            )
        )
    if any(correction.field == LabelCorrection.Field.SECTION for correction in corrections):
        transaction.on_commit(learning.refit_if_due)
    return corrections
