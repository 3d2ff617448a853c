"""Fixtures for the comment tests.

Each test starts with no moderation rule and adds the ones it is about, so a rule seeded by a
migration (or missing after a transactional test flushed the tables) never decides a test.
"""

import pytest

from comments.models import ModerationRule
from tests.factories import ModerationRuleFactory, StoryFactory, UserFactory


@pytest.fixture
def rules(db):
    """Clear every rule; call the fixture to add one: rules("links", limit=2)."""
    ModerationRule.objects.all().delete()

    def add(kind: str, **fields) -> ModerationRule:
        return ModerationRuleFactory(kind=kind, **fields)

    return add


@pytest.fixture
def story(db):
    return StoryFactory(title="Harbour ferries switch to shore power")


@pytest.fixture
def author(db):
    return UserFactory(username="ana")


@pytest.fixture
def other_reader(db):
    return UserFactory(username="bea")


@pytest.fixture
def moderator(db):
    from django.contrib.auth.models import Group

    from tests.comments.utils import grant_moderator_permissions

    user = UserFactory(username="mod", is_staff=True)
    group, _ = Group.objects.get_or_create(name="Moderators")
    grant_moderator_permissions(group)
    user.groups.add(group)
    return user
