"""Celery tasks of the comments app: thin callers of the notification service."""

import smtplib

from celery import shared_task

from . import notifications


@shared_task(autoretry_for=(smtplib.SMTPException, OSError), retry_backoff=30, max_retries=5)
def send_reply_notification(comment_id: int) -> bool:
    return notifications.reply_notification_send(comment_id=comment_id)


@shared_task
def send_waiting_reply_notifications() -> int:
    """A batch: queue the mail of every reply waiting for it, a task each (each retried on its own)."""
    return _queue_mail_of(notifications.waiting_reply_ids())


@shared_task
def sweep_reply_notifications() -> int:
    """Queue again the reply mail a lost queue may have dropped; sending twice is prevented by the claim."""
    return _queue_mail_of(notifications.unsent_reply_ids())


def _queue_mail_of(reply_ids: list[int]) -> int:
    for comment_id in reply_ids:
        send_reply_notification.delay(comment_id)
    return len(reply_ids)
