"""OPML import and export of sources, the format every feed reader speaks."""

from xml.etree.ElementTree import Element, SubElement, tostring

import defusedxml.ElementTree as SafeET
from django.db import transaction
from django.utils.text import slugify

from stories.models import Source, unique_slug


class OPMLError(ValueError):
    """The file is not OPML we can read."""


def export_opml(sources) -> bytes:
    opml = Element("opml", version="2.0")
    head = SubElement(opml, "head")
    SubElement(head, "title").text = "Newsreader sources"
    body = SubElement(opml, "body")
    for source in sources:
        SubElement(
            body,
            "outline",
            type="rss",
            text=source.name,
            title=source.name,
            xmlUrl=source.feed_url,
            htmlUrl=source.homepage_url,
        )
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + tostring(opml, encoding="utf-8")


@transaction.atomic
def import_opml(content: bytes) -> tuple[list[Source], int]:
    """Create a source for every feed outline not known yet. Returns (created, skipped)."""
    try:
        root = SafeET.fromstring(content)
    except Exception as error:  # defusedxml raises several unrelated types for hostile or broken XML
        raise OPMLError(f"The file is not valid OPML: {error}") from error
    if root.tag != "opml":
        raise OPMLError("The file is not OPML: its root element is not <opml>.")
    created, skipped = [], 0
    for outline in root.iter("outline"):
        feed_url = (outline.get("xmlUrl") or "").strip()
        if not feed_url:
            continue
        if not feed_url.startswith(("http://", "https://")) or Source.objects.filter(feed_url=feed_url).exists():
            skipped += 1
            continue
        name = (outline.get("title") or outline.get("text") or feed_url)[:200]
        created.append(
            Source.objects.create(
                name=name,
                slug=unique_slug(Source, slugify(name) or "source"),
                feed_url=feed_url,
                homepage_url=(outline.get("htmlUrl") or "")[:2000],
            )
        )
    return created, skipped
