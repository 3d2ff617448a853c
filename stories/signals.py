"""Any change a visitor could see invalidates the visitor page cache."""

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from . import pagecache
from .models import Region, Section, Source, Story, Tag


@receiver([post_save, post_delete], sender=Story)
@receiver([post_save, post_delete], sender=Section)
@receiver([post_save, post_delete], sender=Tag)
@receiver([post_save, post_delete], sender=Region)
@receiver([post_save, post_delete], sender=Source)
@receiver(m2m_changed, sender=Story.tags.through)
def invalidate_visitor_pages(**kwargs) -> None:
    pagecache.bump_generation()
