"""Stories are labelled by the worker's task; moderators' corrections win over relabelling."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from stories.labelling.service import label_story
from stories.models import LabelCorrection, Region, Source, Story
from tests.factories import RegionFactory, SectionFactory, SourceFactory, StoryFactory, UserFactory

pytestmark = pytest.mark.django_db

SPORT_TEXT = (
    "<p>The striker scored twice in the second half as the home side won the cup final 3-1 in front of "
    "a sold-out stadium in Madrid. The coach praised the players and the fans after the match, and the "
    "club will parade the trophy through the city on Sunday.</p>"
)


@pytest.fixture
def sections():
    from stories import demo

    return {
        item["slug"]: SectionFactory(name=item["name"], slug=item["slug"], description=item["description"])
        for item in demo.SECTIONS
    }


def test_labelling_sets_section_region_tags_language_and_the_ai_label(sections):
    story = StoryFactory(title="Home side lifts the cup in Madrid", body_html=SPORT_TEXT, section=None, dek="")

    label_story(story_id=story.pk)

    story.refresh_from_db()
    assert story.section.slug == "sport"
    assert str(story.region) == "Europe / Spain"
    assert story.tags.exists()
    assert story.language == "en"
    assert story.dek
    assert story.ai_labelled
    assert story.labeller.startswith("embedded")
    assert set(story.label_confidence) >= {"section", "region"}


def test_labelling_twice_gives_the_same_label(sections):
    story = StoryFactory(title="Home side lifts the cup in Madrid", body_html=SPORT_TEXT)

    label_story(story_id=story.pk)
    first = Story.objects.get(pk=story.pk)
    label_story(story_id=story.pk)
    second = Story.objects.get(pk=story.pk)

    assert (first.section_id, first.region_id, first.dek) == (second.section_id, second.region_id, second.dek)
    assert list(first.tags.all()) == list(second.tags.all())


def test_a_moderators_correction_is_kept_on_relabel(sections, admin_client):
    story = StoryFactory(title="Home side lifts the cup in Madrid", body_html=SPORT_TEXT)
    label_story(story_id=story.pk)
    culture = sections["culture"]
    story.refresh_from_db()

    change_url = f"/admin/stories/story/{story.pk}/change/"
    inline_prefixes = [
        inline.formset.prefix for inline in admin_client.get(change_url).context["inline_admin_formsets"]
    ]
    response = admin_client.post(
        change_url,
        {
            **{f"{prefix}-{name}": "0" for prefix in inline_prefixes for name in ("TOTAL_FORMS", "INITIAL_FORMS")},
            **{field: getattr(story, field) for field in ("title", "slug", "dek", "body_html", "original_url")},
            "source": story.source_id,
            "published_at_0": story.published_at.strftime("%Y-%m-%d"),
            "published_at_1": story.published_at.strftime("%H:%M:%S"),
            "section": culture.pk,
            "region": story.region_id,
            "tags": list(story.tags.values_list("pk", flat=True)),
            "language": "en",
            "ai_labelled": "on",
            "status": "published",
            "comments_mode": "open",
        },
    )
    assert response.status_code == 302
    correction = LabelCorrection.objects.get(story=story)
    assert (correction.field, correction.value, correction.previous_value) == ("section", "culture", "sport")

    label_story(story_id=story.pk)

    story.refresh_from_db()
    assert story.section == culture


def test_a_withdrawn_correction_stops_mattering(sections):
    story = StoryFactory(title="Home side lifts the cup in Madrid", body_html=SPORT_TEXT, section=sections["culture"])
    correction = LabelCorrection.objects.create(story=story, field="section", value="culture")
    label_story(story_id=story.pk)
    assert Story.objects.get(pk=story.pk).section.slug == "culture"

    correction.withdrawn_at = correction.created_at
    correction.save()
    label_story(story_id=story.pk)

    assert Story.objects.get(pk=story.pk).section.slug == "sport"


def test_a_source_that_publishes_after_labelling_waits_for_the_label(sections, client):
    source = SourceFactory(publish_mode=Source.PublishMode.AFTER_LABELLING)
    story = StoryFactory(source=source, status=Story.Status.DRAFT, body_html=SPORT_TEXT)
    assert client.get(story.get_absolute_url()).status_code == 404

    label_story(story_id=story.pk)

    assert client.get(story.get_absolute_url()).status_code == 200


def test_unlabelled_stories_show_no_ai_label(client):
    story = StoryFactory(ai_labelled=False, section=None)

    html = client.get(story.get_absolute_url()).content.decode()

    assert "AI-labelled</span>" not in html


def test_the_source_region_hint_is_a_prior(sections):
    asia = RegionFactory(name="Asia", slug="asia")
    source = SourceFactory(region_hint=RegionFactory(name="China", slug="china", parent=asia))
    story = StoryFactory(
        source=source, title="Phone maker opens a chip plant", body_html="<p>The plant will employ 2,000 people.</p>"
    )

    label_story(story_id=story.pk)

    story.refresh_from_db()
    assert story.region.slug in ("china", "asia")


def test_relabel_command_filters_and_shows_progress(sections, capsys):
    wanted = SourceFactory(slug="wanted")
    StoryFactory.create_batch(2, source=wanted, body_html=SPORT_TEXT, ai_labelled=False)
    other = StoryFactory(body_html=SPORT_TEXT, ai_labelled=False)

    call_command("relabel", "--source", "wanted")

    assert Story.objects.filter(source=wanted, ai_labelled=True).count() == 2
    assert not Story.objects.get(pk=other.pk).ai_labelled
    assert "2/2" in capsys.readouterr().out


def test_moderators_may_correct_labels(sections):
    group = Group.objects.get(name="Moderators")
    user = UserFactory(is_staff=True)
    user.groups.add(group)

    assert user.has_perm("stories.change_labelcorrection")
    assert user.has_perm("stories.change_story")
    assert not Region.objects.filter(slug="spain").exists()


def test_relabel_admin_action_queues_the_selected_stories(admin_client, django_capture_on_commit_callbacks):
    story = StoryFactory()

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            "/admin/stories/story/", {"action": "relabel", "_selected_action": [story.pk]}, follow=True
        )

    assert len(callbacks) == 1
    assert "1 stories queued for labelling" in response.content.decode()
