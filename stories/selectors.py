"""Reads behind the reader's pages: list filters and the metadata a story page publishes."""

import json
from dataclasses import dataclass, fields, replace
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, QueryDict
from django.utils.html import _json_script_escapes

from .models import Region, Section, Source, Story, StoryQuerySet, Tag

# IPTC's term for text a model produced, used by schema.org's digitalSourceType.
AI_GENERATED_SOURCE_TYPE = "https://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


@dataclass(frozen=True)
class StoryFilters:
    """The list filters a reader chose, readable from and writable to a query string."""

    section: str = ""
    tag: str = ""
    region: str = ""
    source: str = ""
    q: str = ""
    page: str = ""

    @classmethod
    def from_query(cls, query: QueryDict) -> "StoryFilters":
        return cls(**{f.name: query.get(f.name, "").strip()[:200] for f in fields(cls)})

    @property
    def is_filtered(self) -> bool:
        return any((self.section, self.tag, self.region, self.source, self.q))

    def apply(self, stories: StoryQuerySet) -> StoryQuerySet:
        if self.section:
            stories = stories.in_section(self.section)
        if self.tag:
            stories = stories.tagged(self.tag)
        if self.region:
            stories = stories.in_region(self.region)
        if self.source:
            stories = stories.from_source(self.source)
        if self.q:
            stories = stories.search(self.q)
        return stories

    def querystring(self, *, include_page: bool = False) -> str:
        """The filters as `a=b&c=d` (no page unless asked), for links that keep them."""
        names = [f.name for f in fields(self) if include_page or f.name != "page"]
        return urlencode([(name, getattr(self, name)) for name in names if getattr(self, name)])

    def without(self, name: str) -> str:
        """The query string of these filters with `name` removed (and back to the first page)."""
        return replace(self, **{name: ""}).querystring()


def filter_labels(filters: StoryFilters) -> list[dict[str, str]]:
    """The active filters with readable names and a link that removes each one."""
    lookups = [("section", Section), ("tag", Tag), ("region", Region), ("source", Source)]
    labels = []
    for name, model in lookups:
        slug = getattr(filters, name)
        if not slug:
            continue
        found = model.objects.filter(slug=slug).first()
        labels.append({"kind": name, "label": str(found) if found else slug, "remove": filters.without(name)})
    if filters.q:
        labels.append({"kind": "search", "label": f"“{filters.q}”", "remove": filters.without("q")})
    return labels


def story_page_metadata(request: HttpRequest, story: Story) -> dict[str, str]:
    """Canonical URL, Open Graph values and schema.org NewsArticle JSON-LD for a story page."""
    canonical = request.build_absolute_uri(story.get_absolute_url())
    image = request.build_absolute_uri(story.image_url) if story.image_url else ""
    article = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": story.title[:110],
        "description": story.dek,
        "datePublished": story.published_at.isoformat(),
        "dateModified": story.updated_at.isoformat(),
        "mainEntityOfPage": canonical,
        "url": canonical,
        "inLanguage": story.language or "en",
        "isBasedOn": story.original_url,
        "publisher": {"@type": "Organization", "name": settings.SITE_NAME},
        "sourceOrganization": {"@type": "Organization", "name": story.source.name},
    }
    if story.author:
        article["author"] = {"@type": "Person", "name": story.author}
    if story.section_id:
        article["articleSection"] = story.section.name
    if story.tags.all():
        article["keywords"] = [tag.name for tag in story.tags.all()]
    if image:
        article["image"] = [image]
    if story.ai_generated:
        article["digitalSourceType"] = AI_GENERATED_SOURCE_TYPE
    return {
        "canonical_url": canonical,
        "image_url": image,
        "json_ld": json.dumps(article, ensure_ascii=False).translate(_json_script_escapes),
    }
