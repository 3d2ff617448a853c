"""The fallback chain: the configured labeller first, `embedded` last, every failure recorded on the label."""

import socket

import pytest

from stories.labelling.base import LabellingError
from stories.labelling.embedded import EmbeddedLabeller, StaticEncoder
from stories.labelling.service import LABELLERS, label_story_text, labeller_chain

STORY = {
    "title": "Wind farms now supply a fifth of the country's power",
    "text": "Offshore wind farms in Denmark produced a record share of electricity this winter, the grid operator "
    "said, as the government pushes to cut carbon emissions and close its last coal plants.",
}


@pytest.fixture
def unreachable_openai(settings):
    """An OpenAI-compatible endpoint on a 127.0.0.1 port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.LABELLER = "openai"
    settings.LABELLER_FALLBACKS = ["embedded"]
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"
    settings.OPENAI_MODEL = "test-model"
    settings.OPENAI_MAX_RETRIES = 1
    settings.OPENAI_BACKOFF_SECONDS = 0.01
    settings.OPENAI_CONNECT_TIMEOUT_SECONDS = 1.0
    return settings


def test_the_default_labeller_is_embedded_and_needs_no_fallback(settings):
    settings.LABELLER = "embedded"
    label = label_story_text(**STORY, source_region_hint="Europe", existing_tags=["Wind power"])

    assert label.labeller == "embedded"
    assert label.section == "environment"
    assert str(label.region) == "Europe / Denmark"
    assert label.fallback_from == "" and label.fallback_reason == ""


def test_the_chain_tries_the_setting_then_the_fallbacks_and_always_ends_with_embedded(settings):
    settings.LABELLER = "openai"
    settings.LABELLER_FALLBACKS = ["openai", "embedded"]
    assert labeller_chain() == ["openai", "embedded"]
    settings.LABELLER_FALLBACKS = []
    assert labeller_chain() == ["openai", "embedded"]
    settings.LABELLER = "embedded"
    assert labeller_chain() == ["embedded"]


def test_an_unreachable_endpoint_falls_back_to_embedded_and_records_why(unreachable_openai):
    label = label_story_text(**STORY)

    assert label.labeller == "embedded"
    assert label.section == "environment"
    assert label.fallback_from == "openai"
    assert label.fallback_reason.startswith("openai: The endpoint at http://127.0.0.1:")
    assert "network error: ConnectError" in label.fallback_reason


def test_an_unknown_labeller_name_falls_back_and_names_the_choices(settings):
    settings.LABELLER = "crystal-ball"
    label = label_story_text(**STORY)

    assert label.labeller == "embedded"
    assert label.fallback_from == "crystal-ball"
    assert "LABELLER may be one of ['embedded', 'openai']" in label.fallback_reason


def test_when_every_labeller_fails_the_error_lists_each_failure(unreachable_openai, monkeypatch, tmp_path):
    # An embedded labeller whose model files are missing, as after a broken install.
    monkeypatch.setitem(LABELLERS, "embedded", lambda: EmbeddedLabeller(encoder=StaticEncoder(package_dir=tmp_path)))

    with pytest.raises(LabellingError) as raised:
        label_story_text(**STORY)

    message = str(raised.value)
    assert message.startswith("No labeller could label the story: openai: ")
    assert "embedded: wordllama's model files are missing" in message
