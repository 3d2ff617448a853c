"""Load the demo sections, regions, sources and stories (and, through `demo_stories_loaded`, what other apps
add to them, such as a conversation in the comments), and a demo moderator. Safe to run again."""

import io
import secrets
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from PIL import Image, ImageDraw

from stories import demo, extensions
from stories.models import Region, Section, Source, Story, Tag

DEMO_MODERATOR_EMAIL = "moderator@example.com"
IMAGE_SIZE = (1200, 675)


def demo_image(colours: tuple[tuple[int, int, int], tuple[int, int, int]]) -> bytes:
    """A simple gradient with soft circles: our own artwork, so the demo needs no photo licence."""
    width, height = IMAGE_SIZE
    top, bottom = colours
    image = Image.new("RGB", IMAGE_SIZE)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        mix = y / (height - 1)
        draw.line([(0, y), (width, y)], fill=tuple(round(a + (b - a) * mix) for a, b in zip(top, bottom, strict=True)))
    for index in range(5):
        radius = 60 + index * 35
        x, y = 150 + index * 220, 200 + (index % 2) * 220
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=(255, 255, 255), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=82, optimize=True)
    return buffer.getvalue()


class Command(BaseCommand):
    help = "Load demo content and a demo moderator account (prints its credentials)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-moderator", action="store_true", help="Do not create the demo moderator.")

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        for position, section in enumerate(demo.SECTIONS):
            Section.objects.update_or_create(slug=section["slug"], defaults={**section, "position": position})
        regions = {}
        for name, parent_name in demo.REGIONS:
            regions[name], _ = Region.objects.update_or_create(
                slug=slugify(name), defaults={"name": name, "parent": regions.get(parent_name)}
            )
        for source in demo.SOURCES:
            # The demo publishers are invented: their feeds do not exist, so beat must not poll them.
            Source.objects.update_or_create(
                slug=source["slug"],
                defaults={**source, "is_active": False, "deactivated_reason": "Demo source: its feed does not exist."},
            )
        now = timezone.now()
        stories = {}
        for item in demo.STORIES:
            image_path = f"demo/{item['slug']}.jpg"
            if not default_storage.exists(image_path):
                default_storage.save(image_path, ContentFile(demo_image(item["colours"])))
            story, _ = Story.objects.update_or_create(
                slug=item["slug"],
                defaults={
                    "title": item["title"],
                    "dek": item["dek"],
                    "body_html": item["body"].strip(),
                    "source": Source.objects.get(slug=item["source"]),
                    "section": Section.objects.get(slug=item["section"]),
                    "region": regions[item["region"]],
                    "original_url": f"{Source.objects.get(slug=item['source']).homepage_url}{item['slug']}",
                    "published_at": now - timedelta(hours=item["hours_ago"]),
                    "image_url": default_storage.url(image_path),
                    "image_width": IMAGE_SIZE[0],
                    "image_height": IMAGE_SIZE[1],
                    "image_alt": item["alt"],
                    # Credited to no photographer, so the page reads "Photo: Newsreader demo".
                    "image_credit": "",
                    "image_provider": demo.IMAGE_PROVIDER,
                    "ai_generated": item["ai_generated"],
                    "ai_labelled": True,
                    "labeller": "demo",
                    "status": Story.Status.PUBLISHED,
                },
            )
            story.tags.set(
                Tag.objects.get_or_create(slug=slugify(name), defaults={"name": name})[0] for name in item["tags"]
            )
            stories[story.slug] = story
        extensions.demo_stories_loaded.send(sender=Story, stories=stories)
        self.stdout.write(self.style.SUCCESS(f"Loaded {len(demo.STORIES)} demo stories."))
        if not options["no_moderator"]:
            self._demo_moderator()

    def _demo_moderator(self) -> None:
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username="moderator", defaults={"email": DEMO_MODERATOR_EMAIL})
        user.email = DEMO_MODERATOR_EMAIL
        user.is_staff = True
        user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get(name="Moderators"))
        EmailAddress.objects.update_or_create(
            user=user, email=DEMO_MODERATOR_EMAIL, defaults={"verified": True, "primary": True}
        )
        self.stdout.write(f"Demo moderator: {DEMO_MODERATOR_EMAIL} / {password}")
