"""How long a refit of the labeller takes for thousands of corrections, and whether labelling slows down.

The script owns its PostgreSQL database (dropped and recreated; its name must contain "bench"). It
migrates, writes 5,000 stories of 8 to 12 sentences composed from our own section examples
(stories/labelling/sections.py, nothing from any data set) with a section correction each, spread over
three moderators, and 2,000 stories nobody corrected; then, pinned to one CPU:

1. refits with no version in use (compared with the prior alone), then again with the first version in
   use (compared with it on the held-out share), printing the wall time of each refit and how much of it
   was encoding and fitting;
2. looks for the recent uncorrected stories the new version would change (up to LABELLER_CHANGE_SCAN_LIMIT);
3. labels 400 of the stories one at a time with the prior alone and with the promoted version, and
   prints stories per second for both.

    .venv/bin/python bench/learning.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/newsreader_bench_learning .venv/bin/python bench/learning.py
"""

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _harness import recreate_postgres_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/newsreader_bench_learning"


def setup_django(database_url: str) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsreader.settings")
    import django

    django.setup()


def write_corrections(count: int, uncorrected: int, seed: int = 1) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from stories.labelling.sections import SECTION_PROFILES
    from stories.models import LabelCorrection, Section, Source, Story

    call_command("migrate", verbosity=0)
    rng = random.Random(seed)
    sections = {
        profile.slug: Section.objects.get_or_create(slug=profile.slug, defaults={"name": profile.name})[0]
        for profile in SECTION_PROFILES
    }
    source = Source.objects.create(name="Bench", slug="bench", feed_url="https://bench.example.org/feed.xml")
    moderators = [
        get_user_model().objects.create_user(f"moderator{n}", f"moderator{n}@example.org", is_staff=True)
        for n in range(3)
    ]
    stories = []
    for n in range(count + uncorrected):
        profile = SECTION_PROFILES[n % len(SECTION_PROFILES)]
        # Mostly this section's examples, some of another's: corrections are the hard cases.
        other = rng.choice(SECTION_PROFILES)
        sentences = rng.sample(profile.examples, 7) + rng.sample(other.examples, rng.randint(1, 5))
        rng.shuffle(sentences)
        story = Story(
            source=source,
            section=sections[other.slug],
            title=sentences[0].rstrip("."),
            slug=f"bench-{n}",
            body_html="".join(f"<p>{sentence}</p>" for sentence in sentences[1:]),
            original_url=f"https://bench.example.org/{n}",
            status=Story.Status.PUBLISHED,
            ai_labelled=True,
            labeller="embedded bench",
        )
        story.clean_text()
        stories.append(story)
    Story.objects.bulk_create(stories, batch_size=1000)
    LabelCorrection.objects.bulk_create(
        [
            LabelCorrection(
                story=story,
                field=LabelCorrection.Field.SECTION,
                value=SECTION_PROFILES[n % len(SECTION_PROFILES)].slug,
                previous_value=story.section.slug,
                corrected_by=moderators[n % len(moderators)],
            )
            for n, story in enumerate(Story.objects.order_by("pk")[:count])
        ],
        batch_size=1000,
    )


def timed_refit() -> tuple[float, object]:
    from stories.labelling import learning

    started = time.perf_counter()
    version = learning.refit_labeller(trigger="moderator")
    return time.perf_counter() - started, version


def labelling_speed(labeller, stories) -> float:
    from stories.labelling.base import StoryText

    started = time.perf_counter()
    for story in stories:
        labeller.label(StoryText(title=story.title, text=story.body_text))
    return len(stories) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corrections", type=int, default=5000)
    parser.add_argument("--uncorrected", type=int, default=2000, help="Stories nobody corrected, to scan.")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the first one allowed).")
    options = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.sched_setaffinity(0, {options.cpu if options.cpu is not None else min(os.sched_getaffinity(0))})
    recreate_postgres_database(database_url)
    setup_django(database_url)

    from django.conf import settings

    from stories.labelling import learning
    from stories.labelling.embedded import embedded_labeller
    from stories.models import Story

    started = time.perf_counter()
    write_corrections(options.corrections, options.uncorrected)
    seconds = time.perf_counter() - started
    print(
        f"Wrote {options.corrections} stories with a section correction each and {options.uncorrected} without "
        f"in {seconds:.1f} s"
    )
    started = time.perf_counter()
    labeller = embedded_labeller()
    print(f"Labeller loaded in {time.perf_counter() - started:.1f} s (not part of a refit: workers keep it loaded)")

    for attempt in ("first version (compared with the prior)", "second version (compared with the first)"):
        seconds, version = timed_refit()
        print(
            f"Refit, {attempt}: {seconds:.2f} s for {version.correction_count} corrections, of which encoding "
            f"and fitting {version.fit_seconds:.2f} s; {version.get_status_display()}, held-out accuracy "
            f"{version.held_out_accuracy:.3f} on {version.held_out_count}"
        )
    started = time.perf_counter()
    changes = learning.find_label_changes(version_id=version.pk)
    print(
        f"Stories the version would change: {len(changes)} of the {settings.LABELLER_CHANGE_SCAN_LIMIT} most "
        f"recent, found in {time.perf_counter() - started:.2f} s"
    )

    sample = list(Story.objects.order_by("?")[:400])
    prior_alone = labeller.with_section_models([])
    learned = learning.use_current_version()
    print(f"Labelling, one story at a time, prior alone: {labelling_speed(prior_alone, sample):.0f} stories/s")
    print(f"Labelling with {learned.version.split('/')[-1]}: {labelling_speed(learned, sample):.0f} stories/s")


if __name__ == "__main__":
    main()
