"""factory_boy factories for the models tests build on."""

import factory
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.utils import timezone

from stories.models import Region, Section, Source, Story, Tag


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source

    name = factory.Sequence(lambda n: f"Source {n}")
    slug = factory.Sequence(lambda n: f"source-{n}")
    homepage_url = factory.Sequence(lambda n: f"https://source-{n}.example.org/")
    feed_url = factory.Sequence(lambda n: f"https://source-{n}.example.org/feed.xml")


class SectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Section
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Section {n}")
    slug = factory.Sequence(lambda n: f"section-{n}")
    iptc_code = "medtop:13000000"


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Tag {n}")
    slug = factory.Sequence(lambda n: f"tag-{n}")


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Region {n}")
    slug = factory.Sequence(lambda n: f"region-{n}")


class StoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Story
        skip_postgeneration_save = True

    source = factory.SubFactory(SourceFactory)
    section = factory.SubFactory(SectionFactory)
    title = factory.Sequence(lambda n: f"Story number {n} about harbours")
    dek = "A short summary of the story."
    body_html = "<h2>What happened</h2><p>Something happened in the harbour today.</p>"
    original_url = factory.Sequence(lambda n: f"https://source.example.org/story-{n}")
    published_at = factory.LazyFunction(timezone.now)
    status = Story.Status.PUBLISHED

    @factory.post_generation
    def tags(self, create, extracted, **kwargs):
        if create and extracted:
            self.tags.set(extracted)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"reader{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def verified(self, create, extracted, **kwargs):
        """Readers have a verified email unless built with verified=False."""
        if create:
            EmailAddress.objects.create(user=self, email=self.email, primary=True, verified=extracted is not False)


class CommentFactory(factory.django.DjangoModelFactory):
    """A published comment, rendered like the service renders it; replies take their thread from the parent."""

    class Meta:
        model = "comments.Comment"

    story = factory.LazyAttribute(lambda comment: comment.parent.story if comment.parent else StoryFactory())
    author = factory.SubFactory(UserFactory)
    parent = None
    root = factory.LazyAttribute(lambda comment: (comment.parent.root or comment.parent) if comment.parent else None)
    depth = factory.LazyAttribute(lambda comment: comment.parent.depth + 1 if comment.parent else 0)
    body_source = factory.Sequence(lambda n: f"Comment number {n} about the harbour.")
    body_html = factory.LazyAttribute(lambda comment: f"<p>{comment.body_source}</p>")
    status = "visible"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        """Keep the counts readers see in step, as the services do."""
        from django.db.models import F

        from stories.models import Story

        comment = super()._create(model_class, *args, **kwargs)
        if comment.status == "visible":
            Story.objects.filter(pk=comment.story_id).update(comment_count=F("comment_count") + 1)
            if comment.root_id:
                model_class.objects.filter(pk=comment.root_id).update(thread_reply_count=F("thread_reply_count") + 1)
        return comment


class ModerationRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "comments.ModerationRule"

    name = factory.Sequence(lambda n: f"Rule {n}")
    kind = "suspect_words"
    is_active = True
