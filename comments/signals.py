"""Keeping comments right when other things change: edited rules reach the pipeline at once, every
account has a commenter record moderators can act on, and an account deleted from anywhere (the
admin included) leaves "[deleted]" tombstones, not holes."""

from django.conf import settings
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from . import moderation, services
from .models import Commenter, ModerationRule


@receiver([post_save, post_delete], sender=ModerationRule)
def forget_cached_rules(**kwargs) -> None:
    moderation.forget_cached_rules()


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def give_new_accounts_a_commenter_record(sender, instance, created, raw=False, **kwargs) -> None:
    if created and not raw:
        Commenter.objects.get_or_create(user=instance)


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL)
def erase_deleted_accounts_comments(sender, instance, **kwargs) -> None:
    services.author_comments_erase(user=instance)
