"""The embedded labeller: loads offline from the wheel, labels every field, and combines section models."""

import socket

import numpy as np
import pytest

from stories.labelling import regions, text
from stories.labelling.base import StoryText
from stories.labelling.embedded import (
    EmbeddedLabeller,
    PrototypeSectionModel,
    StaticEncoder,
    combine_section_probabilities,
    embedded_labeller,
)
from stories.labelling.sections import SECTION_PROFILES, SECTION_SLUGS

# Written for these tests: one unmistakable story per section.
CLEAR_STORIES = {
    "world": (
        "Ceasefire talks resume as troops pull back from the border",
        "Envoys from both governments met at a neutral embassy after weeks of shelling along the frontier. "
        "The United Nations said aid convoys could reach refugees in the border towns by the weekend.",
    ),
    "politics": (
        "Opposition vows to block the pension bill in parliament",
        "The opposition leader said her party would vote against the government's pension reform, and several "
        "backbench MPs from the ruling party signalled they might rebel when the bill returns to the chamber.",
    ),
    "business": (
        "Retailer's shares slide after profit warning",
        "Shares in the supermarket chain fell 12 per cent after it warned that annual profits would miss "
        "forecasts, blaming weak sales, higher wages and a price war with its rivals.",
    ),
    "technology": (
        "New phone chip promises longer battery life",
        "The chipmaker unveiled a processor for smartphones that it says uses a third less power, and software "
        "developers will be able to run artificial intelligence models on the device without a network.",
    ),
    "health": (
        "Hospitals brace for a hard flu season",
        "Doctors urged older patients to get vaccinated as flu cases rose in emergency departments, and nurses "
        "warned that wards were already full with patients waiting for treatment.",
    ),
    "sport": (
        "Late goal sends the home side into the cup final",
        "The striker scored in the last minute of extra time as the home team beat their rivals to reach the "
        "final, and the coach praised his players after a tense semi-final in front of a full stadium.",
    ),
    "culture": (
        "Director's new film opens the festival",
        "The actress and the director walked the red carpet as the film premiered to a standing ovation, and "
        "critics tipped the drama and its soundtrack for awards later in the year.",
    ),
    "environment": (
        "Drought and heatwave dry out the river delta",
        "Scientists said climate change made the heatwave more likely, as wildfires burned across the hills, "
        "wildlife lost its wetlands and conservation groups called for cuts in emissions.",
    ),
}


def test_the_model_loads_and_labels_with_networking_blocked(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("networking is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    # Every file the label needs is read afresh under the block.
    regions.gazetteer.cache_clear()
    text._language_identifier.cache_clear()

    labeller = EmbeddedLabeller(encoder=StaticEncoder())
    title, body = CLEAR_STORIES["sport"]
    label = labeller.label(StoryText(title=title, text=body))

    assert label.section == "sport"
    assert label.labeller_version.startswith("1/wordllama-0.4.0.post1/l2_supercat_256/prototypes-")


@pytest.mark.parametrize("section", SECTION_SLUGS)
def test_a_clear_story_lands_in_its_section(section):
    title, body = CLEAR_STORIES[section]
    label = embedded_labeller().label(StoryText(title=title, text=body))
    assert label.section == section
    assert max(label.section_scores, key=label.section_scores.get) == section


def test_a_label_carries_every_field_with_a_confidence():
    label = embedded_labeller().label(
        StoryText(
            title="Battery makers in Shenzhen cut prices as electric car sales climb",
            text="Chinese battery makers cut the price of their cells again. Carmakers in Beijing say cheaper "
            "batteries are bringing electric vehicles within reach of more buyers, and EV sales rose by a third.",
            source_region_hint="Asia / China",
            existing_tags=["EV"],
        )
    )

    assert label.section in SECTION_SLUGS
    assert "EV" in label.tags and len(label.tags) <= 6
    assert str(label.region) == "Asia / China"
    assert label.language == "en"
    assert label.reading_minutes == 1
    assert label.dek == (
        "Chinese battery makers cut the price of their cells again. Carmakers in Beijing say cheaper batteries "
        "are bringing electric vehicles within reach of more buyers, and EV sales rose by a third."
    )
    assert set(label.confidence) == {"section", "tags", "region", "language", "dek"}
    assert all(0.0 <= value <= 1.0 for value in label.confidence.values())
    assert sum(label.section_scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert label.labelled_by.startswith("embedded 1/wordllama")
    assert label.ai_generated is False and label.body_html == ""


class CentroidCorrections:
    """What a model fitted on moderators' corrections looks like to the labeller: centroids of corrected stories."""

    name = "corrections-test"

    def __init__(self, *, labeller: EmbeddedLabeller, examples: dict[str, list[StoryText]], weight: float) -> None:
        self.centroids = np.zeros((len(SECTION_SLUGS), labeller.encoder.dimensions), dtype=np.float32)
        self._weights = np.zeros(len(SECTION_SLUGS), dtype=np.float32)
        for section, stories in examples.items():
            index = SECTION_SLUGS.index(section)
            vectors = labeller.story_vectors(stories)
            centroid = vectors.mean(axis=0)
            self.centroids[index] = centroid / np.linalg.norm(centroid)
            self._weights[index] = weight

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Nearness to each corrected section's centroid; sections without corrections get nothing."""
        active = self._weights > 0
        probabilities = np.zeros((len(vectors), len(SECTION_SLUGS)))
        if active.any():
            scores = vectors @ self.centroids[active].T
            exponentials = np.exp((scores - scores.max(axis=1, keepdims=True)) / 0.02)
            probabilities[:, active] = exponentials / exponentials.sum(axis=1, keepdims=True)
        return probabilities

    def weights(self) -> np.ndarray:
        return self._weights


def test_with_only_the_prior_the_combination_is_the_prior_itself():
    labeller = embedded_labeller()
    stories = [StoryText(title=title, text=body) for title, body in CLEAR_STORIES.values()]
    vectors = labeller.story_vectors(stories)

    combined = combine_section_probabilities([labeller.prior], vectors)

    np.testing.assert_allclose(combined, labeller.prior.probabilities(vectors), rtol=1e-6)


def test_a_fitted_section_model_can_take_over_a_section_by_its_weight():
    prior_only = embedded_labeller()
    gadget_review = StoryText(
        title="We tried the new fitness watch for a month",
        text="The watch counts steps, tracks sleep and measures heart rate, and its battery lasts a week.",
    )
    corrected_as_health = [
        StoryText(title="Smartwatch heart alerts", text="Wearable devices that track heart rate and sleep."),
        StoryText(title="Step counters and health", text="Fitness trackers that count steps help patients."),
    ]
    assert prior_only.label(gadget_review).section != "health"

    corrections = CentroidCorrections(labeller=prior_only, examples={"health": corrected_as_health}, weight=3.0)
    learned = EmbeddedLabeller(encoder=prior_only.encoder, section_models=[corrections])
    silent = EmbeddedLabeller(
        encoder=prior_only.encoder,
        section_models=[CentroidCorrections(labeller=prior_only, examples={"health": corrected_as_health}, weight=0)],
    )

    assert learned.label(gadget_review).section == "health"
    assert silent.label(gadget_review).section_scores == prior_only.label(gadget_review).section_scores
    assert learned.version.endswith(f"prototypes+corrections-test-{prior_only.version.rsplit('-', 1)[1]}")


def test_every_section_has_a_profile_written_for_it():
    assert SECTION_SLUGS == ("world", "politics", "business", "technology", "health", "sport", "culture", "environment")
    for profile in SECTION_PROFILES:
        assert profile.description and len(profile.examples) >= 20 and len(profile.keywords) >= 20
        assert profile.iptc_code.startswith("medtop:")


def test_the_prior_centres_vectors_on_what_all_sections_share():
    model = PrototypeSectionModel(encoder=embedded_labeller().encoder)
    assert model.centroids.shape == (len(SECTION_SLUGS), embedded_labeller().encoder.dimensions)
    np.testing.assert_allclose(np.linalg.norm(model.centroids, axis=1), 1.0, rtol=1e-5)
