"""Our own RSS feeds: the latest stories, and the latest per section."""

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.shortcuts import get_object_or_404

from .models import Section, Story

FEED_LENGTH = 30


class LatestStoriesFeed(Feed):
    link = "/"

    def title(self) -> str:
        return f"{settings.SITE_NAME}: latest stories"

    def description(self) -> str:
        return f"The latest stories on {settings.SITE_NAME}."

    def stories(self):
        return Story.objects.published().select_related("source", "section")

    def items(self):
        return self.stories()[:FEED_LENGTH]

    def item_title(self, story: Story) -> str:
        return story.title

    def item_description(self, story: Story) -> str:
        return story.dek

    def item_pubdate(self, story: Story):
        return story.published_at

    def item_updateddate(self, story: Story):
        return story.updated_at

    def item_author_name(self, story: Story) -> str:
        return story.author or story.source.name

    def item_categories(self, story: Story) -> list[str]:
        return [story.section.name] if story.section_id else []


class SectionStoriesFeed(LatestStoriesFeed):
    def get_object(self, request, section: str) -> Section:
        return get_object_or_404(Section, slug=section)

    def title(self, section: Section) -> str:
        return f"{settings.SITE_NAME}: {section.name}"

    def link(self, section: Section) -> str:
        return section.get_absolute_url()

    def description(self, section: Section) -> str:
        return section.description or f"The latest {section.name} stories on {settings.SITE_NAME}."

    def items(self, section: Section):
        return self.stories().filter(section=section)[:FEED_LENGTH]
