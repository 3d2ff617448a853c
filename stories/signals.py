"""A change a visitor could see invalidates the cached pages that show it, and only those.

A story's change reaches the lists and its own pages (and the page of the story it duplicates, which
lists it as other coverage); a change to a section, tag, region or source as readers see it reaches
every page, though a new tag or region reaches none: no page shows it before a story carries it. An
import's bookkeeping on its source (when it fetched, what it got) reaches none.
"""

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from . import pagecache
from .models import Region, Section, Source, Story, Tag

# What readers see of a source: anything else on it is the importer's bookkeeping.
SOURCE_FIELDS_SHOWN = frozenset({"name", "slug", "homepage_url", "attribution"})


@receiver([post_save, post_delete], sender=Story)
def invalidate_story_pages(instance: Story, **kwargs) -> None:
    # A story given a new slug leaves its old address: the pages kept under it go as well.
    slugs = [instance.slug, getattr(instance, "slug_as_loaded", None)]
    if instance.duplicate_of_id:
        slugs += Story.objects.filter(pk=instance.duplicate_of_id).values_list("slug", flat=True)
    pagecache.stories_changed(*slugs)


@receiver(m2m_changed, sender=Story.tags.through)
def invalidate_pages_of_retagged_stories(instance, action: str, reverse: bool, **kwargs) -> None:
    if not action.startswith("post_"):
        return
    if reverse:  # stories added to or removed from a tag
        pagecache.bump_generation()
    else:
        pagecache.stories_changed(instance.slug)


@receiver([post_save, post_delete], sender=Source)
def invalidate_pages_showing_a_source(update_fields=None, **kwargs) -> None:
    if update_fields is not None and not SOURCE_FIELDS_SHOWN & set(update_fields):
        return
    pagecache.bump_generation()


@receiver([post_save, post_delete], sender=Section)
def invalidate_every_page(**kwargs) -> None:
    pagecache.bump_generation()


@receiver([post_save, post_delete], sender=Tag)
@receiver([post_save, post_delete], sender=Region)
def invalidate_pages_naming(created: bool = False, **kwargs) -> None:
    # A new tag or region is on no page until a story carries it, and that story's change invalidates the
    # pages that show it. Labelling creates them as it goes: bumping here emptied the whole cache per import.
    if not created:
        pagecache.bump_generation()
