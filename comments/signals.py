"""Keeping comments right when other things change: edited rules reach the pipeline at once, every
account has a commenter record moderators can act on (holding its name's look-alike skeleton), and an
account deleted from anywhere (the admin included) leaves "[deleted]" tombstones, not holes; every
committed decision is counted for /metrics."""

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from newsreader import metrics
from stories import pagecache

from . import moderation, services
from .models import Commenter, ModerationLog, ModerationRule, public_name_skeleton

Action = ModerationLog.Action
# The comment counter's outcome for each logged decision; an approval is "posted" when no moderator made it.
_COMMENT_OUTCOMES = {
    Action.HELD: "held",
    Action.REJECTED: "rejected",
    Action.REFUSED: "refused",
    Action.REMOVED: "removed",
    Action.DELETED: "deleted",
}


@receiver([post_save, post_delete], sender=ModerationRule)
def forget_cached_rules(**kwargs) -> None:
    """A rule can open or close every story's comments: cached pages showing the form or "closed" go too."""
    moderation.forget_cached_rules()
    transaction.on_commit(pagecache.bump_generation)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def give_new_accounts_a_commenter_record(sender, instance, created, raw=False, update_fields=None, **kwargs) -> None:
    """Every account has a commenter record, and it knows the skeleton of the account's current public name."""
    if raw or not (created or update_fields is None or "username" in update_fields):
        return
    skeleton = public_name_skeleton(instance.username)
    if created or not Commenter.objects.filter(user=instance).update(name_skeleton=skeleton):
        Commenter.objects.get_or_create(user=instance, defaults={"name_skeleton": skeleton})


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL)
def erase_deleted_accounts_comments(sender, instance, **kwargs) -> None:
    services.author_comments_erase(user=instance)
    services.reader_recommendations_erase(user=instance)


@receiver(post_save, sender=ModerationLog)
def count_decision(sender, instance: ModerationLog, created: bool, raw: bool = False, using=None, **kwargs) -> None:
    if not created or raw:
        return
    if instance.action == Action.REPORTED:
        counter = metrics.REPORTS.labels(kind="comment")
    elif instance.action == Action.APPROVED:
        counter = metrics.COMMENTS.labels(outcome="approved" if instance.moderator_id else "posted")
    elif instance.action in _COMMENT_OUTCOMES:
        counter = metrics.COMMENTS.labels(outcome=_COMMENT_OUTCOMES[instance.action])
    else:
        return
    transaction.on_commit(counter.inc, using=using)
