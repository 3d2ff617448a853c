"""A demo conversation for `manage.py load_demo`: a few comments and replies on two demo stories by three demo
readers, written for Newsreader. Posted through the comment services, so that counts, rendering and the
moderation log are as for any comment; loading it again changes nothing.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.utils import timezone

from stories.models import Story

from . import services
from .models import Comment

# Fixes each line's idempotency key, so that a second load finds the comments of the first.
DEMO_NAMESPACE = uuid.UUID("6f1d7a52-3b8e-4c1a-9d2f-5e7b0c4a8d13")
DEMO_NOTE = "Demo conversation"


@dataclass(frozen=True)
class Line:
    """One comment of the conversation: `reply_to` names an earlier line; posted `minutes` after the story."""

    name: str
    author: str
    minutes: int
    text: str
    reply_to: str = ""


READERS = ("marta", "tomas", "kiri")

CONVERSATIONS = {
    "lisbon-tram-line-returns-with-battery-cars": [
        Line(
            "climb",
            "marta",
            20,
            "I rode the old line every morning as a student, and the climb to the castle was always the slowest "
            "part of the day. I wonder whether the battery cars keep their pace uphill when they are full.",
        ),
        Line(
            "full-cars",
            "tomas",
            45,
            "If the descent refills the pack, the hard case is a crowded car going up right after an empty one "
            "came down. I would like to see the numbers from a rainy rush hour.",
            reply_to="climb",
        ),
        Line(
            "figures",
            "marta",
            70,
            "Fair point. The city says it will publish monthly reliability figures, so we should know by spring.",
            reply_to="full-cars",
        ),
        Line(
            "wires",
            "kiri",
            95,
            "Taking the wires down matters more than it sounds. Those streets are narrow, and every view of the "
            "castle used to be crossed by cables.",
        ),
    ],
    "norwegian-fjord-ferries-switch-to-shore-power": [
        Line(
            "grid",
            "tomas",
            30,
            "Halving the fuel bill is impressive, but the line about the grid connection is the real story. "
            "Small harbours rarely have a cable strong enough for an overnight charge.",
        ),
        Line(
            "island",
            "kiri",
            65,
            "Our island waited two years for a new cable before the ferry could charge at the quay. Worth it: "
            "the first crossing of the day no longer smells of diesel.",
            reply_to="grid",
        ),
        Line(
            "storms",
            "marta",
            110,
            "What happens on the longer crossings during winter storms? Do the ships still carry an engine in "
            "case the batteries run low?",
        ),
        Line(
            "backup",
            "tomas",
            150,
            "On the routes I know, yes: a small generator stays on board for emergencies, but it hardly ever runs.",
            reply_to="storms",
        ),
    ],
}


def load_demo_conversations(sender, *, stories: dict[str, Story], **kwargs) -> None:
    """Post the conversation on those of its stories that were loaded (connected to `demo_stories_loaded`)."""
    readers = {name: _demo_reader(name) for name in READERS}
    for slug, lines in CONVERSATIONS.items():
        story = stories.get(slug)
        if story is not None:
            _post_conversation(story, lines, readers)


def _post_conversation(story: Story, lines: list[Line], readers: dict) -> None:
    posted: dict[str, Comment] = {}
    for line in lines:
        parent = posted.get(line.reply_to) if line.reply_to else None
        if line.reply_to and (parent is None or parent.status != Comment.Status.VISIBLE):
            continue  # a moderator took the comment down since the last load: its replies stay away too
        comment = services.comment_create(
            story=story,
            author=readers[line.author],
            body=line.text,
            parent=parent,
            idempotency_key=uuid.uuid5(DEMO_NAMESPACE, f"{story.slug}/{line.name}"),
        )
        if comment.status == Comment.Status.PENDING:
            # A demo reader's first comment waits for a moderator under the default rules; the demo has none yet.
            comment = services.comment_approve(comment=comment, moderator=None, note=DEMO_NOTE)
        # Dated as if written in the hours after the story, which also keeps the readers' pace rules (they
        # count the last hour) from refusing the next line.
        posted_at = story.published_at + timedelta(minutes=line.minutes)
        Comment.objects.filter(pk=comment.pk).update(created_at=posted_at)
        posted[line.name] = comment


def _demo_reader(name: str):
    """A reader who joined a while ago, with a verified email, no password and no reply mails."""
    email = f"{name}@example.com"
    user, created = get_user_model().objects.get_or_create(
        username=name, defaults={"email": email, "date_joined": timezone.now() - timedelta(days=90)}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})
    services.commenter_set_reply_notifications(user=user, enabled=False)
    return user
