"""Sitemaps of published stories and sections."""

from django.contrib.sitemaps import Sitemap

from .models import Section, Story


class StorySitemap(Sitemap):
    changefreq = "daily"
    limit = 5000

    def items(self):
        return Story.objects.published().only("slug", "updated_at").order_by("-published_at")

    def lastmod(self, story: Story):
        return story.updated_at


class SectionSitemap(Sitemap):
    changefreq = "hourly"
    priority = 0.6

    def items(self):
        return Section.objects.all()


sitemaps = {"stories": StorySitemap, "sections": SectionSitemap}
