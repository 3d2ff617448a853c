"""Learning from moderators' corrections: fit the section model on them, compare it with the version in
use on a held-out share, promote it, and keep every worker's labeller on the promoted version.

`fit_from_examples` is the fit itself, the same for the product and for `evaluate_labeller --corrections`;
`refit_labeller` reads the corrections from the database and stores the result as a `LabellerVersion`;
`CurrentVersion` is how a worker notices a new version without a restart.
"""

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Left
from django.utils import timezone
from scipy.optimize import minimize

from stories.labelling.base import StoryText
from stories.labelling.embedded import (
    SECTION_SAMPLE_CHARS,
    CorrectionsSectionModel,
    EmbeddedLabeller,
    IncompatibleSectionModel,
    PrototypeSectionModel,
    combine_section_probabilities,
    corrections_features,
    embedded_labeller,
)
from stories.labelling.sections import SECTION_SLUGS
from stories.models import LabelCorrection, LabellerVersion, Section, Story

logger = logging.getLogger(__name__)

# L2 penalties on the coefficients and the per-section intercepts: with few corrections the fitted model
# stays close to the prior, and corrections into one section do not favour it for every story.
REGULARISATION = 3e-2
INTERCEPT_REGULARISATION = 3e-2
# A speaking section's weight beside the prior's 1 grows with its corrections towards WEIGHT_MAX,
# reaching half of it at WEIGHT_HALF corrections.
WEIGHT_MAX = 10.0
WEIGHT_HALF = 5.0
MAX_ITERATIONS = 500
# Stories encoded at a time when looking for labels a new version changes.
SCAN_BATCH = 500

REFIT_LOCK_KEY = "newsreader:labeller:refitting"
REFIT_QUEUED_KEY = "newsreader:labeller:refit-queued"
REFIT_LOCK_SECONDS = 15 * 60


@dataclass(frozen=True)
class SectionExample:
    """One section correction as the fit reads it. `key` (the story's id) decides whether it is held out."""

    key: int
    title: str
    text: str
    section: str
    moderator: int | None = None


def is_held_out(key: int, share: float) -> bool:
    """Whether a story's correction is kept out of trial fits: fixed per story, so every version's trial
    model is compared on corrections none of them learnt from."""
    if share <= 0:
        return False
    return (key * 2654435761 % 2**32) / 2**32 < share


def _share_cap(counts: Sequence[int], share: float) -> float:
    """The largest number of examples T such that, with every moderator counted for at most T, none
    has more than `share` of the total. Zero when one moderator made them all."""

    def slack(limit: float) -> float:
        return share * sum(min(count, limit) for count in counts) - limit

    points = sorted(set(counts), reverse=True)
    if slack(points[0]) >= -1e-9:
        return float(points[0])
    upper = points[0]
    for point in [*points[1:], 0]:
        if slack(point) >= 0:
            # The slack is linear between two counts: its root there is the cap.
            return point + (upper - point) * slack(point) / (slack(point) - slack(upper))
        upper = point
    return 0.0


def moderator_weights(examples: Sequence[SectionExample], *, max_share: float) -> np.ndarray:
    """Each example's weight in the fit: 1, except that no moderator's examples count for more than
    `max_share` of a section's (their weights shrink evenly). Unknown moderators count as one."""
    weights = np.ones(len(examples))
    if max_share >= 1:
        return weights
    by_section: dict[str, dict[int | None, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, example in enumerate(examples):
        by_section[example.section][example.moderator].append(index)
    for groups in by_section.values():
        cap = _share_cap([len(indices) for indices in groups.values()], max_share)
        for indices in groups.values():
            if len(indices) > cap:
                weights[indices] = cap / len(indices)
    return weights


def section_weights(counts: np.ndarray, speaks: np.ndarray) -> np.ndarray:
    """How much the fitted part counts beside the prior (weight 1), per section.

    A section it speaks for weighs more the more corrections it has. The fitted part has no parameters
    for the other sections, so among them it keeps the prior's proportions and can only move probability
    from them to sections it speaks for; it does that with the weight of its strongest section (with
    weight 0 there, a story the prior confidently files in a section nobody corrected into could never
    move, however many stories like it moderators refiled).
    """
    spoken = np.where(speaks, WEIGHT_MAX * counts / (counts + WEIGHT_HALF), 0.0)
    return np.where(speaks, spoken, spoken.max(initial=0.0))


def fit_section_model(
    *,
    prior: PrototypeSectionModel,
    vectors: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    min_per_section: float,
    name: str = "corrections",
) -> CorrectionsSectionModel | None:
    """A regularised multinomial logistic regression on the story vectors, starting from the prior's logits.

    Only sections whose (weighted) examples reach `min_per_section` get coefficients, and only they are
    spoken for; examples of the other sections still teach the model not to claim those stories. None
    when no section has enough examples.
    """
    if not len(targets):
        return None
    counts = np.bincount(targets, weights=weights, minlength=len(SECTION_SLUGS))
    # A section counted for nothing (one moderator's alone) never speaks, whatever the minimum.
    speaks = counts >= max(min_per_section, 1e-9)
    if not speaks.any():
        return None
    features = corrections_features(prior, vectors).astype(np.float64)
    offsets = np.log(np.maximum(prior.probabilities(vectors), 1e-9)).astype(np.float64)
    onehot = np.zeros((len(targets), len(SECTION_SLUGS)))
    onehot[np.arange(len(targets)), targets] = 1.0
    sample = weights / weights.sum()
    mask = speaks.astype(np.float64)
    dimensions, sections = features.shape[1], len(SECTION_SLUGS)

    def loss_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        coefficients = flat[: dimensions * sections].reshape(dimensions, sections) * mask
        intercepts = flat[dimensions * sections :] * mask
        logits = features @ coefficients + intercepts + offsets
        logits -= logits.max(axis=1, keepdims=True)
        log_normaliser = np.log(np.exp(logits).sum(axis=1))
        loss = float(sample @ (log_normaliser - (logits * onehot).sum(axis=1)))
        loss += REGULARISATION / 2 * float((coefficients**2).sum())
        loss += INTERCEPT_REGULARISATION / 2 * float((intercepts**2).sum())
        residual = (np.exp(logits - log_normaliser[:, None]) - onehot) * sample[:, None]
        coefficient_gradient = (features.T @ residual + REGULARISATION * coefficients) * mask
        intercept_gradient = (residual.sum(axis=0) + INTERCEPT_REGULARISATION * intercepts) * mask
        return loss, np.concatenate([coefficient_gradient.ravel(), intercept_gradient])

    result = minimize(
        loss_and_gradient,
        np.zeros(dimensions * sections + sections),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": MAX_ITERATIONS},
    )
    return CorrectionsSectionModel(
        prior=prior,
        coefficients=result.x[: dimensions * sections].reshape(dimensions, sections) * mask,
        intercepts=result.x[dimensions * sections :] * mask,
        section_weights=section_weights(counts, speaks),
        speaks=speaks,
        name=name,
    )


@dataclass
class Fit:
    """One refit before it is stored: the model, the trial model and the held-out corrections to compare on."""

    model: CorrectionsSectionModel | None
    trial: CorrectionsSectionModel | None
    section_stats: dict[str, dict]
    held_out_vectors: np.ndarray
    held_out_targets: np.ndarray
    held_out_hits: int
    prior_hits: int
    seconds: float

    @property
    def held_out_count(self) -> int:
        return len(self.held_out_targets)

    @property
    def correction_count(self) -> int:
        return sum(stats["examples"] for stats in self.section_stats.values())


def held_out_hits(
    prior: PrototypeSectionModel, model: CorrectionsSectionModel | None, vectors: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    """Which held-out corrections the prior with this model files in the corrected section."""
    if not len(targets):
        return np.zeros(0, dtype=bool)
    models = (prior, model) if model is not None else (prior,)
    return combine_section_probabilities(models, vectors).argmax(axis=1) == targets


def fit_from_examples(
    *,
    labeller: EmbeddedLabeller,
    examples: Sequence[SectionExample],
    min_per_section: float,
    max_moderator_share: float,
    held_out_share: float,
    name: str = "corrections",
) -> Fit:
    """Fit on every example, and a trial model without the held-out share to score the version with."""
    started = time.perf_counter()
    examples = [example for example in examples if example.section in SECTION_SLUGS]
    vectors = labeller.story_vectors([StoryText(title=example.title, text=example.text) for example in examples])
    targets = np.array([SECTION_SLUGS.index(example.section) for example in examples], dtype=np.int64)
    weights = moderator_weights(examples, max_share=max_moderator_share)
    held = np.array([is_held_out(example.key, held_out_share) for example in examples], dtype=bool)
    common = {"prior": labeller.prior, "min_per_section": min_per_section}
    model = fit_section_model(vectors=vectors, targets=targets, weights=weights, name=name, **common)
    trial = fit_section_model(vectors=vectors[~held], targets=targets[~held], weights=weights[~held], **common)
    hits = held_out_hits(labeller.prior, trial, vectors[held], targets[held])
    prior_hits = held_out_hits(labeller.prior, None, vectors[held], targets[held])

    section_stats: dict[str, dict] = {}
    for index, slug in enumerate(SECTION_SLUGS):
        in_section = targets == index
        if not in_section.any():
            continue
        held_in_section = in_section[held]
        section_stats[slug] = {
            "examples": int(in_section.sum()),
            "counted": round(float(weights[in_section].sum()), 2),
            "moderators": len({examples[i].moderator for i in np.flatnonzero(in_section)}),
            "speaks": bool(model is not None and model.speaks[index]),
            "weight": round(float(model.section_weights[index]), 3) if model is not None else 0.0,
            "held_out": int(held_in_section.sum()),
            "hits": int(hits[held_in_section].sum()),
        }
    return Fit(
        model=model,
        trial=trial,
        section_stats=section_stats,
        held_out_vectors=vectors[held],
        held_out_targets=targets[held],
        held_out_hits=int(hits.sum()),
        prior_hits=int(prior_hits.sum()),
        seconds=time.perf_counter() - started,
    )


# --- The product: corrections from the database, versions stored there --------------------------------


def load_section_examples() -> list[SectionExample]:
    """Every active section correction to one of the labeller's sections, the newest per story."""
    rows = (
        LabelCorrection.objects.active()
        .filter(field=LabelCorrection.Field.SECTION)
        .order_by("pk")
        .annotate(
            title=Left("story__title", 300),
            body=Left("story__body_text", SECTION_SAMPLE_CHARS),
            summary=Left("story__dek", SECTION_SAMPLE_CHARS),
        )
        .values_list("story_id", "value", "corrected_by_id", "title", "body", "summary")
    )
    latest: dict[int, SectionExample] = {}
    for story_id, value, moderator, title, body, summary in rows:
        if isinstance(value, str) and value in SECTION_SLUGS:
            latest[story_id] = SectionExample(
                key=story_id, title=title or "", text=body or summary or "", section=value, moderator=moderator
            )
        else:
            latest.pop(story_id, None)
    return list(latest.values())


def section_changes_since(moment) -> int:
    """Section corrections made or withdrawn after `moment` (all of them when None)."""
    corrections = LabelCorrection.objects.filter(field=LabelCorrection.Field.SECTION)
    if moment is not None:
        corrections = corrections.filter(Q(created_at__gt=moment) | Q(withdrawn_at__gt=moment))
    return corrections.count()


def withdrawn_since_fitted(version: LabellerVersion) -> int:
    """Corrections this version learnt from that have been withdrawn (or replaced) since."""
    return LabelCorrection.objects.filter(
        field=LabelCorrection.Field.SECTION, created_at__lte=version.data_as_of, withdrawn_at__gt=version.data_as_of
    ).count()


def stored_model(
    data: bytes | memoryview | None, *, labeller: EmbeddedLabeller, number: int
) -> CorrectionsSectionModel | None:
    """A version's stored parameters as a section model for this labeller; None when empty or unusable."""
    if not data:
        return None
    try:
        return CorrectionsSectionModel.from_bytes(
            data, prior=labeller.prior, basis=labeller.basis, name=f"corrections-v{number}"
        )
    except IncompatibleSectionModel as error:
        logger.warning("Labeller version %s is not used: %s", number, error)
        return None


def _describe(hits: int, total: int) -> str:
    return f"{hits / total:.3f} ({hits} of {total})"


def refit_labeller(*, trigger: str = LabellerVersion.Trigger.NIGHTLY) -> LabellerVersion | None:
    """Fit a new version on the active section corrections; promote it unless it scores worse than the
    version in use on the held-out corrections, and say why when it does not.

    Returns None when another refit is running, or when a nightly refit finds nothing changed.
    """
    cache.delete(REFIT_QUEUED_KEY)
    if not cache.add(REFIT_LOCK_KEY, 1, REFIT_LOCK_SECONDS):
        logger.info("A labeller refit is already running; this one is skipped.")
        return None
    try:
        return _refit(trigger=trigger)
    finally:
        cache.delete(REFIT_LOCK_KEY)


def _refit(*, trigger: str) -> LabellerVersion | None:
    latest = LabellerVersion.objects.order_by("-number").first()
    if (
        section_changes_since(latest.data_as_of if latest else None) == 0
        and trigger != LabellerVersion.Trigger.MODERATOR
    ):
        return None
    data_as_of = timezone.now()
    number = (latest.number if latest else 0) + 1
    labeller = embedded_labeller()
    fit = fit_from_examples(
        labeller=labeller,
        examples=load_section_examples(),
        min_per_section=settings.LABELLER_MIN_CORRECTIONS_PER_SECTION,
        max_moderator_share=settings.LABELLER_MAX_MODERATOR_SHARE,
        held_out_share=settings.LABELLER_HELD_OUT_SHARE,
        name=f"corrections-v{number}",
    )
    current = LabellerVersion.objects.current()
    compared_with, baseline_hits, withdrawn = "the prior alone", fit.prior_hits, 0
    if current is not None:
        withdrawn = withdrawn_since_fitted(current)
        if withdrawn:
            # It cannot stay in use, so the new version need only beat the prior.
            compared_with = f"the prior alone (version {current.number} learnt from {withdrawn} withdrawn corrections)"
        else:
            predecessor = stored_model(current.trial_parameters, labeller=labeller, number=current.number)
            compared_with = f"version {current.number}"
            baseline_hits = int(
                held_out_hits(labeller.prior, predecessor, fit.held_out_vectors, fit.held_out_targets).sum()
            )
    promote = fit.held_out_hits >= baseline_hits
    total = fit.held_out_count
    reason = ""
    if not promote:
        reason = (
            f"On the {total} held-out corrections it scored {_describe(fit.held_out_hits, total)}, "
            f"worse than {compared_with}: {_describe(baseline_hits, total)}."
        )
        if withdrawn:
            reason += f" Version {current.number} was retired as well, and the prior labels alone."
    with transaction.atomic():
        now = timezone.now()
        if promote or withdrawn:
            retired = LabellerVersion.objects.select_for_update().filter(status=LabellerVersion.Status.PROMOTED)
            retired.update(
                status=LabellerVersion.Status.RETIRED,
                refusal_reason=f"Replaced by version {number}." if promote else f"Retired with version {number}.",
            )
        version = LabellerVersion.objects.create(
            number=number,
            data_as_of=data_as_of,
            trigger=trigger,
            status=LabellerVersion.Status.PROMOTED if promote else LabellerVersion.Status.REFUSED,
            promoted_at=now if promote else None,
            refusal_reason=reason,
            basis=labeller.basis,
            labelled_by=f"{labeller.name} {labeller.with_section_models([fit.model] if fit.model else []).version}",
            parameters=fit.model.to_bytes(basis=labeller.basis) if fit.model else b"",
            trial_parameters=fit.trial.to_bytes(basis=labeller.basis) if fit.trial else b"",
            correction_count=fit.correction_count,
            held_out_count=total,
            held_out_accuracy=fit.held_out_hits / total if total else None,
            predecessor_accuracy=baseline_hits / total if total else None,
            compared_with=compared_with,
            section_stats=fit.section_stats,
            fit_seconds=round(fit.seconds, 3),
        )
    logger.info("Labeller version %s %s in %.2f s: %s", number, version.status, fit.seconds, reason or "promoted")
    return version


def refit_if_due() -> bool:
    """Queue a refit once LABELLER_REFIT_EVERY section corrections were made or withdrawn since the last
    version (run after the transaction that recorded them commits). Returns whether one was queued."""
    from stories.tasks import refit_labeller_task

    latest = LabellerVersion.objects.order_by("-number").values_list("data_as_of", flat=True).first()
    if section_changes_since(latest) < settings.LABELLER_REFIT_EVERY:
        return False
    if not cache.add(REFIT_QUEUED_KEY, 1, REFIT_LOCK_SECONDS):
        return False
    refit_labeller_task.delay(trigger=LabellerVersion.Trigger.CORRECTIONS)
    return True


def find_label_changes(*, version_id: int) -> list[list]:
    """Recent labelled stories whose section this version would change, stored on the version as
    [story id, from, to]; stories a moderator corrected keep their section and are left out."""
    version = LabellerVersion.objects.filter(pk=version_id).first()
    if version is None:
        return []
    labeller = embedded_labeller()
    model = stored_model(version.parameters, labeller=labeller, number=version.number)
    versioned = labeller.with_section_models([model] if model else [])
    corrected = LabelCorrection.objects.active().filter(field=LabelCorrection.Field.SECTION).values("story_id")
    rows = list(
        Story.objects.filter(ai_labelled=True, section__isnull=False)
        .exclude(pk__in=corrected)
        .order_by("-published_at", "-pk")
        .annotate(body=Left("body_text", SECTION_SAMPLE_CHARS), summary=Left("dek", SECTION_SAMPLE_CHARS))
        .values_list("pk", "title", "body", "summary", "section__slug")[: settings.LABELLER_CHANGE_SCAN_LIMIT]
    )
    known = set(Section.objects.values_list("slug", flat=True))
    changes = []
    for start in range(0, len(rows), SCAN_BATCH):
        batch = rows[start : start + SCAN_BATCH]
        vectors = versioned.story_vectors(
            [StoryText(title=title, text=body or summary or "") for _, title, body, summary, _ in batch]
        )
        predicted = versioned.section_probabilities(vectors).argmax(axis=1)
        for (story_id, *_, section), index in zip(batch, predicted, strict=True):
            slug = SECTION_SLUGS[index]
            if slug != section and slug in known:
                changes.append([story_id, section, slug])
    version.label_changes = changes
    version.save(update_fields=["label_changes"])
    return changes


class CurrentVersion:
    """Keeps a labeller on the promoted version. At most every LABELLER_VERSION_CHECK_SECONDS it asks the
    database (one row) which version is promoted, and loads that version's parameters when it changed; a
    worker therefore picks up a new version without a restart."""

    def __init__(self, labeller: Callable[[], EmbeddedLabeller] = embedded_labeller) -> None:
        self._labeller = labeller
        self._lock = threading.Lock()
        self._loaded_id: int | None = None
        self._checked_at: float | None = None

    def refresh(self) -> EmbeddedLabeller:
        labeller = self._labeller()
        now = time.monotonic()
        if self._checked_at is not None and now - self._checked_at < settings.LABELLER_VERSION_CHECK_SECONDS:
            return labeller
        with self._lock:
            self._checked_at = now
            current_id = LabellerVersion.objects.current_id()
            if current_id != self._loaded_id:
                labeller.use_section_models(self._models(current_id, labeller))
                self._loaded_id = current_id
        return labeller

    @staticmethod
    def _models(version_id: int | None, labeller: EmbeddedLabeller) -> list[CorrectionsSectionModel]:
        row = LabellerVersion.objects.filter(pk=version_id).values_list("number", "parameters").first()
        if row is None:
            return []
        model = stored_model(row[1], labeller=labeller, number=row[0])
        return [model] if model else []


CURRENT = CurrentVersion()


def use_current_version() -> EmbeddedLabeller:
    """Bring this process's embedded labeller onto the promoted version (cheap between checks)."""
    return CURRENT.refresh()


@dataclass(frozen=True)
class SectionOverview:
    """One section's line in the admin: its corrections, what the current version makes of them, and
    how many recent stories that version files differently from their current section."""

    slug: str
    name: str
    active: int
    withdrawn: int
    moderators: int
    speaks: bool
    weight: float
    held_out: int
    hits: int
    moving_in: int
    moving_out: int

    @property
    def held_out_accuracy(self) -> float | None:
        return self.hits / self.held_out if self.held_out else None


def section_overview(current: LabellerVersion | None) -> list[SectionOverview]:
    """Every section with corrections, a weight or label changes, in the site's order (two queries)."""
    active: dict[str, int] = defaultdict(int)
    withdrawn: dict[str, int] = defaultdict(int)
    moderators: dict[str, set] = defaultdict(set)
    corrections = LabelCorrection.objects.filter(field=LabelCorrection.Field.SECTION)
    for value, withdrawn_at, moderator in corrections.values_list("value", "withdrawn_at", "corrected_by_id"):
        if not isinstance(value, str):
            continue
        if withdrawn_at is None:
            active[value] += 1
            moderators[value].add(moderator)
        else:
            withdrawn[value] += 1
    stats = current.section_stats if current else {}
    changes = current.label_changes if current else []
    moving_in: dict[str, int] = defaultdict(int)
    moving_out: dict[str, int] = defaultdict(int)
    for _, old, new in changes:
        moving_out[old] += 1
        moving_in[new] += 1
    overview = []
    for section in Section.objects.all():
        slug = section.slug
        if not (active[slug] or withdrawn[slug] or slug in stats or moving_in[slug] or moving_out[slug]):
            continue
        section_stats = stats.get(slug, {})
        overview.append(
            SectionOverview(
                slug=slug,
                name=section.name,
                active=active[slug],
                withdrawn=withdrawn[slug],
                moderators=len(moderators[slug]),
                speaks=section_stats.get("speaks", False),
                weight=section_stats.get("weight", 0.0),
                held_out=section_stats.get("held_out", 0),
                hits=section_stats.get("hits", 0),
                moving_in=moving_in[slug],
                moving_out=moving_out[slug],
            )
        )
    return overview
